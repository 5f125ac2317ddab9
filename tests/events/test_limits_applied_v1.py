"""``hardware.limits_applied``: v1 stored each clamp as the Python repr of the clamp struct, which
``json_extract`` cannot reach into; v2 stores them structured (issue 20). Old logs still decode,
verify and replay, their clamp texts parsed by a strict reader of exactly that repr."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec
import pytest

from events.catalogue import Catalogue
from events.der_model import ControlSettings, Mode
from events.hardware_events import (
    Clamp,
    LimitsApplied,
    LimitsAppliedV1,
    parse_clamp_repr,
    upcast_limits_applied_v1,
)
from events.registry import ALL_EVENT_TYPES, CATALOGUE
from events.sqlite_store import SqliteEventStore
from statemachines import site_limit

#: What a v1 gateway wrote: ``str()`` of the clamp struct.
OLD_TEXT = str(Clamp(mode="hold", requested=6123.456789, applied=5000.0, bound="max_discharge_w"))

#: The catalogue of a gateway before issue 20: v1 is its current LimitsApplied.
OLD_CATALOGUE = Catalogue(
    tuple(LimitsAppliedV1 if t is LimitsApplied else t for t in ALL_EVENT_TYPES)
)


def old_record(clamps: tuple[str, ...]) -> LimitsAppliedV1:
    return LimitsAppliedV1(
        at_s=1_764_115_200.0,
        settings=ControlSettings(export_limit_w=5000.0),
        applied=(Mode.EXPORT_LIMIT_W,),
        setpoint_w=5000.0,
        wrote=True,
        clamps=clamps,
        site_limit_met=False,
    )


def test_the_site_limit_loop_clamps_are_the_logged_clamps() -> None:
    """One clamp type: what the closed loop decides is what the record holds, no text between."""
    assert site_limit.Clamp is Clamp


def test_the_v1_repr_parses_into_the_structured_clamp() -> None:
    assert OLD_TEXT.startswith("Clamp(mode='hold', requested=6123.456789")
    assert parse_clamp_repr(OLD_TEXT) == Clamp(
        mode="hold", requested=6123.456789, applied=5000.0, bound="max_discharge_w"
    )
    big = str(Clamp(mode="target_w", requested=-1e20, applied=-1.5e-05, bound="import_limit_w"))
    assert parse_clamp_repr(big) == Clamp(
        mode="target_w", requested=-1e20, applied=-1.5e-05, bound="import_limit_w"
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "clamped at 5000 W",
        OLD_TEXT + " ",
        OLD_TEXT.replace("'hold'", '"hold"'),
        OLD_TEXT.replace("5000.0", "nan"),
        OLD_TEXT.replace("mode=", "mod="),
        "Clamp(mode='hold', requested=1.0, applied=2.0, bound='x', extra=1)",
    ],
)
def test_anything_else_is_not_interpreted(text: str) -> None:
    assert parse_clamp_repr(text) is None


def test_the_upcast_keeps_every_field_and_flags_an_unknown_text() -> None:
    new = upcast_limits_applied_v1(old_record((OLD_TEXT, "something else")))
    assert isinstance(new, LimitsApplied)
    assert new.clamps == (parse_clamp_repr(OLD_TEXT),)
    assert new.unparsed_clamps == ("something else",)
    assert (new.at_s, new.settings, new.applied, new.setpoint_w, new.wrote) == (
        1_764_115_200.0,
        ControlSettings(export_limit_w=5000.0),
        (Mode.EXPORT_LIMIT_W,),
        5000.0,
        True,
    )
    assert new.site_limit_met is False


def test_an_old_log_verifies_and_reads_as_the_current_type(tmp_path: Path) -> None:
    path = tmp_path / "old.sep2gw"
    with SqliteEventStore(path, OLD_CATALOGUE) as old:
        old.append_events(
            "hardware", [old_record((OLD_TEXT,))], server_time=1_764_115_200.0, monotonic=1.0
        )
    with SqliteEventStore(path, CATALOGUE, readonly=True) as store:
        assert store.verify().ok
        ((record,),) = [list(store.read())]
        assert next(store.read_raw()).type == "hardware.limits_applied.v1"
    assert isinstance(record.event, LimitsApplied)
    assert record.event.clamps == (
        Clamp(mode="hold", requested=6123.456789, applied=5000.0, bound="max_discharge_w"),
    )


def test_new_records_hold_clamps_json_extract_can_reach(tmp_path: Path) -> None:
    path = tmp_path / "new.sep2gw"
    event = LimitsApplied(
        at_s=1.0,
        settings=ControlSettings(export_limit_w=5000.0),
        applied=(Mode.EXPORT_LIMIT_W,),
        clamps=(Clamp(mode="hold", requested=6000.0, applied=5000.0, bound="max_discharge_w"),),
    )
    with SqliteEventStore(path, CATALOGUE) as store:
        store.append_events("hardware", [event], server_time=1.0, monotonic=1.0)
        assert next(store.read_raw()).type == "hardware.limits_applied.v2"
    with sqlite3.connect(path) as db:
        (bound, requested) = db.execute(
            "SELECT json_extract(body, '$.clamps[0].bound'), "
            "json_extract(body, '$.clamps[0].requested') FROM events"
        ).fetchone()
    assert (bound, requested) == ("max_discharge_w", 6000.0)
    body = msgspec.json.decode(CATALOGUE.encode(event))
    assert "unparsed_clamps" not in body or body["unparsed_clamps"] == []

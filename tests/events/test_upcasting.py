"""A log outlives its code: events written under an old tag version are read as the current type."""

from __future__ import annotations

from pathlib import Path

from events.base import Event
from events.catalogue import Catalogue
from events.sqlite_store import SqliteEventStore


# Version 1 of a setpoint event carried kilowatts as a float, with no source.
class SetpointWrittenV1(Event, frozen=True, kw_only=True, tag="test.setpoint_written.v1"):
    kw: float


# Version 2 carries watts as an integer (units in the name) and where the command came from.
class SetpointWrittenV2(Event, frozen=True, kw_only=True, tag="test.setpoint_written.v2"):
    power_w: int
    source: str


# Version 3 adds the read-back value, absent (None) in older records.
class SetpointWritten(Event, frozen=True, kw_only=True, tag="test.setpoint_written.v3"):
    power_w: int
    source: str
    read_back_w: int | None = None


def v1_to_v2(old: SetpointWrittenV1) -> SetpointWrittenV2:
    return SetpointWrittenV2(power_w=round(old.kw * 1000), source="unknown (v1 record)")


def v2_to_v3(old: SetpointWrittenV2) -> SetpointWritten:
    return SetpointWritten(power_w=old.power_w, source=old.source)


OLD_BUILD = Catalogue([SetpointWrittenV1])
MIDDLE_BUILD = Catalogue([SetpointWrittenV2])
NEW_BUILD = Catalogue([SetpointWritten], {SetpointWrittenV1: v1_to_v2, SetpointWrittenV2: v2_to_v3})


def test_upcaster_chain_turns_v1_into_current() -> None:
    body = OLD_BUILD.encode(SetpointWrittenV1(kw=2.5))
    assert NEW_BUILD.decode(body) == SetpointWritten(
        power_w=2500, source="unknown (v1 record)", read_back_w=None
    )


def test_current_tag_decodes_without_upcasting() -> None:
    event = SetpointWritten(power_w=-300, source="control:A1", read_back_w=-298)
    assert NEW_BUILD.decode(NEW_BUILD.encode(event)) == event


def test_log_written_by_older_builds_reads_as_current_types(tmp_path: Path) -> None:
    path = tmp_path / "site.sep2gw"
    with SqliteEventStore(path, OLD_BUILD) as old:
        old.append_events("hardware", [SetpointWrittenV1(kw=1.2)], server_time=10.0, monotonic=1.0)
    with SqliteEventStore(path, MIDDLE_BUILD) as middle:
        middle.append_events(
            "hardware",
            [SetpointWrittenV2(power_w=800, source="default")],
            server_time=11.0,
            monotonic=2.0,
        )
    with SqliteEventStore(path, NEW_BUILD) as new:
        events = [r.event for r in new.read()]
        assert events == [
            SetpointWritten(power_w=1200, source="unknown (v1 record)"),
            SetpointWritten(power_w=800, source="default"),
        ]
        # Upcasting changes what readers see, never what is stored: the chain still verifies.
        assert new.verify().ok


def test_batch_decoding_for_verification_keeps_each_bodys_stored_tag() -> None:
    """Verification compares a row's type column with the tag the body was stored under, not the
    upcast type's tag; one call decodes a whole batch, and any bad body refuses the batch."""
    bodies = [
        OLD_BUILD.encode(SetpointWrittenV1(kw=0.5)),
        NEW_BUILD.encode(SetpointWritten(power_w=7, source="default")),
    ]
    assert NEW_BUILD.decode_stored_batch(bodies) == (
        ["test.setpoint_written.v1", "test.setpoint_written.v3"],
        [
            SetpointWritten(power_w=500, source="unknown (v1 record)"),
            SetpointWritten(power_w=7, source="default"),
        ],
    )
    assert NEW_BUILD.decode_stored_batch([*bodies, b'{"type":"test.setpoint_written.v3"}']) is None
    assert NEW_BUILD.decode_stored_batch([bodies[0] + b"\n" + bodies[1]]) is None

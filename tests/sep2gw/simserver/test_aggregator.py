"""Aggregator certificates on the simulated head-end (IEEE 2030.5 §6.6 / CSIP §5.2 access; CSIP-AUS
multiple-EndDevice shared controls): one certificate registers and runs several EndDevices."""

from __future__ import annotations

import pytest

from sep2gw.simserver import SimReply, UtilityState, parse_scenario
from sep2gw.simserver.scenario import ScenarioError
from transport.identity import sfdi_from_lfdi
from transport.sep2 import decode, encode
from transport.sep2 import resources as r

from .helpers import LFDI, START, end_device

AGGREGATOR = "A6" * 20
SITE_A = "5A" * 20
SITE_B = "5B" * 20
SITE_C = "5C" * 20
STRANGER = "E1" * 20  # some other device, on its own certificate

FLEET = f"""
[server]
aggregators = ["{AGGREGATOR}"]

[[programs]]
id = "shared"
primacy = 10
[[programs]]
id = "only_b"
primacy = 20
sites = ["site-001"]

[[actions]]
at_s = 0
kind = "create_control"
mrid = "C1"
program = "shared"
start_s = 60
duration_s = 600
modes = {{ opModExpLimW = 1500 }}
"""

SITES = {"site-000": int(SITE_A, 16), "site-001": int(SITE_B, 16), "site-002": int(SITE_C, 16)}


def fleet_state() -> UtilityState:
    scenario = parse_scenario(FLEET)
    state = UtilityState(scenario, start=START, site_lfdis=SITES)
    for _, action in scenario.timeline():
        state.apply(action, START + action.at_s)
    return state


def post(state: UtilityState, path: str, obj: object, peer: str, now: float = START) -> SimReply:
    return state.handle("POST", path, encode(obj), peer, now)  # type: ignore[arg-type]


def get(state: UtilityState, path: str, peer: str, now: float = START) -> SimReply:
    return state.handle("GET", path, b"", peer, now)


def register_sites(state: UtilityState) -> dict[str, str]:
    locations = {}
    for name, lfdi in (("a", SITE_A), ("b", SITE_B), ("c", SITE_C)):
        reply = post(state, "/edev", end_device(lfdi), AGGREGATOR)
        assert reply.status == 201, reply.reason
        assert reply.location is not None
        locations[name] = reply.location
    return locations


def response(mrid: int, lfdi: str, status: int = 1) -> r.DERControlResponse:
    return r.DERControlResponse(
        createdDateTime=START + 70,
        endDeviceLFDI=r.HexBinary160(int(lfdi, 16)),
        status=status,
        subject=r.HexBinary128(mrid),
    )


def test_an_aggregator_registers_end_devices_with_other_lfdis() -> None:
    state = fleet_state()
    locations = register_sites(state)
    assert locations == {"a": "/edev/1", "b": "/edev/2", "c": "/edev/3"}
    device = state.device_by_lfdi(int(SITE_B, 16))
    assert device is not None and device.sfdi == sfdi_from_lfdi(SITE_B)
    assert device.registered_by == int(AGGREGATOR, 16)
    # the same POST again finds the same resource (re-registration after a restart)
    again = post(state, "/edev", end_device(SITE_B), AGGREGATOR)
    assert (again.status, again.location, len(state.devices)) == (201, "/edev/2", 3)


def test_a_device_certificate_still_registers_only_its_own_lfdi() -> None:
    state = fleet_state()
    reply = post(state, "/edev", end_device(SITE_A), LFDI)
    assert reply.status == 403 and "not the client certificate's LFDI" in reply.reason


def test_an_aggregator_cannot_take_over_an_end_device_another_certificate_registered() -> None:
    state = fleet_state()
    assert post(state, "/edev", end_device(STRANGER), STRANGER).status == 201
    reply = post(state, "/edev", end_device(STRANGER), AGGREGATOR)
    assert reply.status == 403 and "belongs to another LFDI" in reply.reason


def test_the_aggregator_lists_only_the_end_devices_it_registered() -> None:
    state = fleet_state()
    post(state, "/edev", end_device(STRANGER), STRANGER)
    register_sites(state)
    listed = decode(get(state, "/edev", AGGREGATOR).body, r.EndDeviceList)
    assert listed.all == 3
    assert {int(d.lFDI or 0) for d in listed.EndDevice} == set(SITES.values())
    dcap = decode(get(state, "/dcap", AGGREGATOR).body, r.DeviceCapability)
    assert dcap.EndDeviceListLink is not None and dcap.EndDeviceListLink.all == 3
    own = decode(get(state, "/edev", STRANGER).body, r.EndDeviceList)
    assert own.all == 1


def test_the_aggregator_reads_each_of_its_end_devices_and_no_other() -> None:
    state = fleet_state()
    post(state, "/edev", end_device(STRANGER), STRANGER)  # /edev/1
    register_sites(state)  # /edev/2..4
    for path in ("/edev/2", "/edev/3/fsa", "/edev/4/der", "/edev/2/fsa/1/derp"):
        assert get(state, path, AGGREGATOR).status == 200, path
    refused = get(state, "/edev/1", AGGREGATOR)
    assert refused.status == 403 and "another LFDI" in refused.reason
    assert get(state, "/edev/2", STRANGER).status == 403


def test_programs_are_assigned_per_end_device() -> None:
    state = fleet_state()
    register_sites(state)
    programs = {
        name: [
            p.description or ""
            for p in decode(
                get(state, f"/edev/{i}/fsa/1/derp", AGGREGATOR).body, r.DERProgramList
            ).DERProgram
        ]
        for i, name in enumerate("abc", start=1)
    }
    assert [len(v) for v in programs.values()] == [1, 2, 1]
    # the program list of the DER (AssociatedDERProgramListLink) counts the same programs
    der = decode(get(state, "/edev/2/der/1", AGGREGATOR).body, r.DER)
    assert der.AssociatedDERProgramListLink is not None
    assert der.AssociatedDERProgramListLink.all == 2


def test_a_shared_control_is_answered_per_end_device() -> None:
    state = fleet_state()
    register_sites(state)
    controls = decode(get(state, "/derp/1/derc", AGGREGATOR).body, r.DERControlList)
    control = controls.DERControl[0]
    assert control.replyTo == "/rsps/1/rsp"
    mrid = int(control.mRID)
    for lfdi in (SITE_A, SITE_B, SITE_C):
        reply = post(state, control.replyTo, response(mrid, lfdi), AGGREGATOR)
        assert reply.status == 201, reply.reason
    assert state.responses_by_end_device(mrid) == {lfdi: [1] for lfdi in SITES.values()}


def test_a_response_for_an_end_device_the_certificate_does_not_own_is_403() -> None:
    state = fleet_state()
    post(state, "/edev", end_device(STRANGER), STRANGER)
    register_sites(state)
    mrid = 0xC1
    reply = post(state, "/rsps/1/rsp", response(mrid, STRANGER), AGGREGATOR)
    assert reply.status == 403 and "not an EndDevice this certificate registered" in reply.reason
    unknown = post(state, "/rsps/1/rsp", response(mrid, "77" * 20), AGGREGATOR)
    assert unknown.status == 403
    assert state.responses_by_end_device(mrid) == {}


def test_a_response_for_a_program_not_assigned_to_the_end_device_is_refused() -> None:
    scenario = (
        FLEET
        + """
[[actions]]
at_s = 0
kind = "create_control"
mrid = "B1"
program = "only_b"
start_s = 60
duration_s = 600
modes = { opModExpLimW = 1000 }
"""
    )
    state = UtilityState(parse_scenario(scenario), start=START, site_lfdis=SITES)
    for _, action in parse_scenario(scenario).timeline():
        state.apply(action, START)
    register_sites(state)
    assert post(state, "/rsps/2/rsp", response(0xB1, SITE_B), AGGREGATOR).status == 201
    refused = post(state, "/rsps/2/rsp", response(0xB1, SITE_A), AGGREGATOR)
    assert refused.status == 400 and "not assigned" in refused.reason


def test_mirrors_belong_to_the_end_device_the_aggregator_names() -> None:
    state = fleet_state()
    post(state, "/edev", end_device(STRANGER), STRANGER)
    register_sites(state)

    def mup(lfdi: str, mrid: int) -> r.MirrorUsagePoint:
        return r.MirrorUsagePoint(
            mRID=r.HexBinary128(mrid),
            description="site",
            roleFlags=r.HexBinary16(13),
            serviceCategoryKind=0,
            status=1,
            deviceLFDI=r.HexBinary160(int(lfdi, 16)),
        )

    assert post(state, "/mup", mup(SITE_A, 0xA1), AGGREGATOR).location == "/mup/1"
    assert post(state, "/mup", mup(SITE_B, 0xB1), AGGREGATOR).location == "/mup/2"
    assert state.mirrors[1].owner_lfdi == int(SITE_B, 16)
    listed = decode(get(state, "/mup", AGGREGATOR).body, r.MirrorUsagePointList)
    assert listed.all == 2
    refused = post(state, "/mup", mup(STRANGER, 0xE1), AGGREGATOR)
    assert refused.status == 403 and "deviceLFDI" in refused.reason


def test_a_scenario_names_aggregators_as_lfdis() -> None:
    with pytest.raises(ScenarioError) as refused:
        parse_scenario('[server]\naggregators = ["A6A6"]\n')
    assert refused.value.problems == [
        "server.aggregators[0]: 'A6A6' is not an LFDI (40 hex digits)"
    ]


def test_an_installer_registered_the_aggregators_sites_out_of_band() -> None:
    scenario = parse_scenario(FLEET.replace("[server]\n", "[server]\npre_registered = true\n"))
    state = UtilityState(scenario, start=START, site_lfdis=SITES)
    listed = decode(get(state, "/edev", AGGREGATOR).body, r.EndDeviceList)
    assert [int(d.lFDI or 0) for d in listed.EndDevice] == list(SITES.values())
    assert all(not d.in_band for d in state.devices)
    assert {d.registered_by for d in state.devices} == {int(AGGREGATOR, 16)}
    # a device certificate that asks is pre-registered on its own, as before
    assert get(state, "/edev", STRANGER).status == 200
    assert len(state.devices) == 4 and state.devices[3].registered_by is None

"""The continuous invariant monitor on hand-made inputs: each invariant fires when broken, and the
documented exemptions (disturbances) hold."""

from __future__ import annotations

from typing import Any

from sep2gw.invariants import Monitor, recovery_s
from sep2gw.sim import BatteryParams, SimBattery, SiteParams
from sep2gw.simserver import FailRequests, RecordedRequest, UtilityState, parse_scenario
from transport.sep2 import resources as r
from transport.sep2.hexbinary import HexBinary128, HexBinary160

T0 = 1_764_115_200.0
SCENARIO = parse_scenario(
    """
[server]
poll_rate_s = 60
[[programs]]
id = "net"
primacy = 10
""",
    source="monitor test",
)


class _Clock:
    def __init__(self) -> None:
        self.t = T0

    def now(self) -> float:
        return self.t


class _Server:
    """What the monitor reads of the server: its state (pollRates, programs) and clock."""

    def __init__(self) -> None:
        self.state = UtilityState(SCENARIO, start=T0)
        self.clock = _Clock()


def monitor() -> tuple[Monitor, list[int]]:
    stops: list[int] = []
    m = Monitor(SCENARIO)
    battery = SimBattery(BatteryParams(), SiteParams(), seed=1, start_s=T0)
    m.attach(server=_Server(), battery=battery, stop=lambda: stops.append(1))  # type: ignore[arg-type]
    m._gateway = object()  # type: ignore[assignment]  # a gateway is up
    return m, stops


def request(
    t: float, method: str, target: str, body: Any = None, status: int = 200
) -> RecordedRequest:
    return RecordedRequest(
        time=T0 + t,
        method=method,
        target=target,
        path=target.partition("?")[0],
        status=status,
        lfdi="AB" * 20,
        body=body,
        location=None,
        reason="",
        alpn="h2",
    )


def poll(m: Monitor, t: float) -> None:
    m.on_request(request(t, "GET", "/derp/1/derc?s=0&l=100"))


def test_polls_at_the_rate_hold() -> None:
    m, stops = monitor()
    for t in (0, 60, 121, 180):
        poll(m, t)
    assert m.violation is None and not stops
    assert m.checks["polls never more often than asked"] == 3


def test_polling_faster_than_asked_is_a_violation() -> None:
    m, stops = monitor()
    poll(m, 0)
    poll(m, 30)
    assert m.violation is not None and m.violation.invariant == "polls never more often than asked"
    assert m.violation.at_s == T0 + 30 and stops == [1]


def test_a_later_page_is_not_a_second_poll() -> None:
    m, _ = monitor()
    poll(m, 0)
    m.on_request(request(0.5, "GET", "/derp/1/derc?s=100&l=100"))
    poll(m, 60)
    assert m.violation is None


def test_an_overdue_poll_is_seen_at_the_next_request_of_any_kind() -> None:
    m, _ = monitor()
    poll(m, 0)
    m.on_request(request(95, "GET", "/tm"))
    assert m.violation is not None and m.violation.invariant == "polls within 1.5x pollRate"
    assert m.violation.at_s == T0 + 91  # when 1.5 x 60 s (+1 s slack) ran out


def test_gaps_touching_a_fault_window_are_exempt_until_recovery() -> None:
    m, _ = monitor()
    poll(m, 0)
    m.on_action(T0 + 30, FailRequests(at_s=30, duration_s=100))
    m.on_request(request(200, "GET", "/tm"))  # overdue, but inside the disturbance
    poll(m, 210)
    poll(m, 215)  # the recovery re-poll: sooner than asked, still exempt
    assert m.violation is None
    after = 130 + recovery_s(60) + 10
    poll(m, after)
    poll(m, after + 20)
    assert m.violation is not None and m.violation.invariant == "polls never more often than asked"


def response(t: float, status: int, mrid: int = 0xC1) -> RecordedRequest:
    body = r.Response(
        href=None,
        createdDateTime=int(T0 + t),
        endDeviceLFDI=HexBinary160(0xAB),
        status=status,
        subject=HexBinary128(mrid),
    )
    return request(t, "POST", "/rsps/1/rsp", body, status=201)


def test_a_response_accepted_twice_is_a_duplicate() -> None:
    m, _ = monitor()
    m.on_request(response(0, 1))
    m.on_request(response(5, 1))
    assert m.violation is not None and m.violation.invariant == "no duplicate responses"


def test_completed_before_started_is_an_illegal_sequence() -> None:
    m, _ = monitor()
    m.on_request(response(0, 1))
    m.on_request(response(5, 3))
    assert m.violation is not None and m.violation.invariant == "legal response sequences"


def test_a_reading_set_off_the_minute_is_a_violation() -> None:
    m, _ = monitor()

    def reading(start: int) -> r.MirrorMeterReading:
        return r.MirrorMeterReading(
            mRID=HexBinary128(1),
            MirrorReadingSet=(
                r.MirrorReadingSet(
                    mRID=HexBinary128(2),
                    timePeriod=r.DateTimeInterval(start=start, duration=60),
                ),
            ),
        )

    aligned = reading(1_764_115_260)
    m.on_request(request(0, "POST", "/mup/1", aligned, status=201))
    assert m.violation is None and m.checks["readings minute-aligned"] == 1
    off = reading(1_764_115_265)
    m.on_request(request(1, "POST", "/mup/1", off, status=201))
    assert m.violation is not None and m.violation.invariant == "readings minute-aligned"


def test_a_setpoint_beyond_the_rating_is_a_violation() -> None:
    m, _ = monitor()
    assert m._battery is not None
    m._battery.setpoint_w = 7_000.0  # rated 5 kW
    m.on_request(request(0, "GET", "/tm"))
    assert m.violation is not None
    assert m.violation.invariant == "nameplate and settings never exceeded"

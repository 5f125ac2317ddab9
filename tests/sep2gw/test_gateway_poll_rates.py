"""Regression: a pollRate the server changes is followed for our EndDevice and Registration too
(PROTOCOL.md §4 rule 15: poll at the containing resource's pollRate, a change applies next cycle).

The walk read the EndDeviceList's and the Registration's pollRate once; the polls after it read
only the EndDevice (which carries no pollRate) and the Registration without looking at its rate,
so after the utility slowed every resource from 20 s to 90 s both were still polled every 20 s."""

from __future__ import annotations

from pathlib import Path

from sep2gw.simserver import parse_scenario
from sep2gw.world import run_world

SLOWER = """
name = "pollRate slowed"
[server]
poll_rate_s = 20
[[programs]]
id = "retailer"
primacy = 20
default = { opModExpLimW = 5000 }
[[actions]]
at_s = 100
kind = "set_poll_rate"
seconds = 90
[[actions]]
at_s = 500
kind = "set_post_rate"
seconds = 60
"""


def test_end_device_and_registration_follow_a_changed_poll_rate(pki: Path) -> None:
    result = run_world(parse_scenario(SLOWER, source="test"), seed=8, site=pki, monitor=False)
    server, start = result.server, result.server.start
    for path in ("/edev/1", "/edev/1/rg"):
        times = [q.time - start for q in server.polls_of(path)]
        before = [b - a for a, b in zip(times, times[1:], strict=False) if b <= 100]
        after = [b - a for a, b in zip(times, times[1:], strict=False) if a >= 160]
        assert before and all(gap == 20 for gap in before), (path, times)
        assert after and all(90 <= gap <= 135 for gap in after), (path, times)

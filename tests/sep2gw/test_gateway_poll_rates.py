"""Regression: a pollRate the server changes is followed for our EndDevice and Registration too
(PROTOCOL.md §4 rule 15: poll at the containing resource's pollRate, a change applies next cycle).

The walk read the EndDeviceList's and the Registration's pollRate once; the polls after it read
only the EndDevice (which carries no pollRate) and the Registration without looking at its rate,
so after the utility slowed every resource from 20 s to 90 s both were still polled every 20 s."""

from __future__ import annotations

from pathlib import Path

import pytest

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


EVERY_MINUTE = """
name = "every pollRate at 60 s for 13 minutes"
[server]
poll_rate_s = 60
post_rate_s = 300
[[programs]]
id = "retailer"
primacy = 20
default = { opModExpLimW = 5000 }
[[actions]]
at_s = 780
kind = "set_post_rate"
seconds = 300
"""


def test_rule_15_every_depended_on_resource_is_re_read_at_its_poll_rate(pki: Path) -> None:
    """§2 step 7 and §4 rule 15: DeviceCapability, the DERList and the MirrorUsagePointList were
    read only at creation while the lists next to them were polled every 60 s."""
    result = run_world(parse_scenario(EVERY_MINUTE, source="test"), seed=3, site=pki, monitor=False)
    server = result.server
    for path in ("/dcap", "/tm", "/edev/1", "/edev/1/rg", "/edev/1/fsa", "/edev/1/der", "/mup"):
        gaps = server.poll_intervals(path)
        assert len(gaps) >= 11, (path, gaps)  # 13 minutes at 60 s
        assert max(gaps) <= 75, (path, gaps)
        if path != "/mup":  # the mirror reads the list too, when it creates a MirrorUsagePoint
            assert min(gaps) >= 60 - 1e-6, (path, gaps)


LOST_MIRRORS = """
name = "the server loses the mirror usage points between two posts"
[server]
poll_rate_s = 30
post_rate_s = 300
[[programs]]
id = "retailer"
primacy = 20
[[actions]]
at_s = 620
kind = "lose_mirrors"
[[actions]]
at_s = 960
kind = "set_post_rate"
seconds = 300
"""


def test_rule_15_a_mirror_usage_point_list_that_lost_ours_has_them_created_again(
    pki: Path,
) -> None:
    """§2.8 with §4 rule 15: the MirrorUsagePointList re-read at its pollRate shows the server lost
    our MirrorUsagePoints: the mirror creates them again before its next post, instead of
    learning it from readings refused with 404 (sent to MirrorUsagePoints that no longer exist)."""
    result = run_world(parse_scenario(LOST_MIRRORS, source="test"), seed=4, site=pki, monitor=False)
    server, start = result.server, result.server.start
    created = [q.time - start for q in server.posts_to("/mup") if q.status == 201]
    assert len(created) == 4, created  # site and DER at the start, both again after the loss
    assert all(t > 620 for t in created[2:]), created
    readings = [q for q in server.requests if q.method == "POST" and q.path.startswith("/mup/")]
    assert readings and all(q.status == 201 for q in readings), [
        (q.time - start, q.path, q.status) for q in readings
    ]


OUTAGE = """
name = "ten minutes of refused DER information PUTs with every pollRate at 60 s"
[server]
poll_rate_s = 60
post_rate_s = 300
[[programs]]
id = "retailer"
primacy = 20
default = { opModExpLimW = 5000 }
# A real network: every answer takes a while, so the polls of one cycle fall due apart.
[[actions]]
at_s = 0
kind = "slow"
duration_s = 1000
delay_s = 0.3
[[actions]]
at_s = 120
kind = "fail"
duration_s = 600
{failure}
methods = ["PUT"]
# A changed setGradW read during the outage: DERSettings differs, its PUT is refused, and the
# whole set is owed to each cycle until it is accepted (the polls themselves are answered).
[[actions]]
at_s = 300
kind = "change_default"
program = "retailer"
modes = { opModExpLimW = 5000 }
set_grad_w = 600
[[actions]]
at_s = 960
kind = "set_post_rate"
seconds = 300
"""


@pytest.mark.parametrize("failure", ["status = 503", "reset = true"], ids=["503", "offline"])
def test_section2_7_der_information_goes_out_at_most_once_per_cycle_during_an_outage(
    pki: Path, failure: str
) -> None:
    """§2.7 with §4 rule 15: the DER information set is owed after a refused PUT and sent again at
    the next cycle, once, however many polls fall due in that cycle (it went out after each)."""
    scenario = parse_scenario(OUTAGE.replace("{failure}", failure), source="test")
    result = run_world(scenario, seed=6, site=pki, monitor=False)
    server, start = result.server, result.server.start
    for info in ("dercap", "derg", "derav"):
        times = [q.time - start for q in server.puts_to(f"/edev/1/der/1/{info}")]
        # A PUT on a connection that turns out closed is re-sent once at once by the HTTPS client
        # (idempotent): one attempt of the cycle, not a second cycle.
        attempts = [t for i, t in enumerate(times) if i == 0 or t - times[i - 1] > 1.0]
        during = [t for t in attempts if 120 <= t < 720]
        assert len(during) <= 11, (info, times)  # ten minutes at one cycle a minute
        gaps = [b - a for a, b in zip(during, during[1:], strict=False)]
        # Never twice in one cycle; the cycle's instant moves by the time its polls take before
        # the PUT (0.3 s an answer, more while resources are held back), so not exactly 60 s.
        assert all(gap >= 45 for gap in gaps), (info, times)
        assert any(t >= 720 for t in times), (info, times)  # sent again after the outage

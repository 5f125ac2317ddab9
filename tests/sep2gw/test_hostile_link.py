"""Issue 15 point 2, bounded retry on every failure path: whatever breaks the link (a connection
dropped mid-answer, a TLS failure, an HTTP error), the gateway backs off the whole link with the
walk's jittered exponential policy. Against a fault that lasts 150 s: at most ~20 connections.

Each test runs the simulated utility server and battery on the autojump clock
(``tests.sep2gw.world``); the fault is one of the server's scenario faults."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE
from sep2gw.simserver import parse_scenario
from tests.sep2gw.world import EPOCH, World, deadline

SCENARIO = """
name = "one resource breaks the link"

[server]
pin = 111115
poll_rate_s = 30
post_rate_s = 60

[[programs]]
id = "network"
primacy = 1
default = {{ opModExpLimW = 5000 }}

[[actions]]
at_s = 0
kind = "create_control"
mrid = "C0000000000000000000000000000001"
program = "network"
start_s = 60
duration_s = 120
modes = {{ opModExpLimW = 1000 }}

[[actions]]
at_s = 10
kind = "fail"
duration_s = 150
{fault}
"""

#: The issue's figure: at most this many connections while the link is broken for 150 s.
MAX_CONNECTIONS_IN_150_S = 20
#: ... and at most this many requests a minute (the issue's benchmark figure).
MAX_REQUESTS_PER_MINUTE = 60


@pytest.mark.parametrize(
    "fault",
    [
        # One list drops the connection while the rest answer: the link came back at once, every
        # poll was due again and the list dropped it again (a busy loop: virtual time stood still).
        'reset = true\npaths = ["/derp/1/derc"]',
        "reset = true",  # everything drops the connection: 33 connections in 150 s
    ],
    ids=["list-reset", "all-reset"],
)
async def test_bounded_retry_a_broken_link_is_retried_at_most_20_times_in_150_s(
    pki: Path, autojump_clock: trio.abc.Clock, fault: str
) -> None:
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, parse_scenario(SCENARIO.format(fault=fault), source="test"), store)
    with deadline(3600):
        await world.run(160)
    server = world.server
    assert server is not None
    connections = server.https.statistics().connections
    in_fault = [q for q in server.requests if q.time >= EPOCH + 10]
    assert connections <= MAX_CONNECTIONS_IN_150_S, connections
    assert len(in_fault) <= MAX_REQUESTS_PER_MINUTE * 150 / 60, len(in_fault)

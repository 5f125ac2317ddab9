"""Discovery once (issue 19): identical GETs in flight at once go to the server once; nothing is
kept after the answer (no cache, nothing stale)."""

from __future__ import annotations

import functools

import pytest
import trio
import trio.testing

from actors.shared_gets import SharedGets
from transport.errors import LinkTimeout
from transport.http.messages import Response

KEY = ("AGGREGATOR", "/dcap", "application/sep+xml")


class Origin:
    """A server that answers each request after ``delay_s``, counting what reached it."""

    def __init__(self, delay_s: float = 1.0) -> None:
        self.delay_s = delay_s
        self.calls = 0

    async def fetch(self) -> Response:
        self.calls += 1
        body = f"answer {self.calls}".encode()
        await trio.sleep(self.delay_s)
        return Response(200, (), body)


async def test_concurrent_identical_gets_reach_the_server_once(
    autojump_clock: trio.abc.Clock,
) -> None:
    shared, origin = SharedGets(), Origin()
    got: list[bytes] = []

    async def site() -> None:
        got.append((await shared.get(KEY, origin.fetch, timeout_s=30)).body)

    async with trio.open_nursery() as nursery:
        for _ in range(50):
            nursery.start_soon(site)
    assert origin.calls == 1
    assert got == [b"answer 1"] * 50
    statistics = shared.statistics()
    assert (statistics.sent, statistics.joined) == (1, 49)


async def test_a_get_after_the_answer_goes_to_the_server_again(
    autojump_clock: trio.abc.Clock,
) -> None:
    shared, origin = SharedGets(), Origin()
    first = await shared.get(KEY, origin.fetch, timeout_s=30)
    second = await shared.get(KEY, origin.fetch, timeout_s=30)
    assert (first.body, second.body, origin.calls) == (b"answer 1", b"answer 2", 2)


async def test_different_targets_or_certificates_are_not_shared(
    autojump_clock: trio.abc.Clock,
) -> None:
    shared, origin = SharedGets(), Origin()
    keys = [KEY, ("AGGREGATOR", "/tm", KEY[2]), ("OWN-DEVICE", "/dcap", KEY[2])]
    async with trio.open_nursery() as nursery:
        for key in keys:
            nursery.start_soon(functools.partial(shared.get, key, origin.fetch, timeout_s=30))
    assert origin.calls == 3


async def test_a_failure_of_the_shared_request_is_every_waiters_failure(
    autojump_clock: trio.abc.Clock,
) -> None:
    shared = SharedGets()

    async def fails() -> Response:
        await trio.sleep(1)
        raise LinkTimeout("GET /dcap: no complete response within 1 s")

    failures: list[str] = []

    async def site() -> None:
        with pytest.raises(LinkTimeout) as raised:
            await shared.get(KEY, fails, timeout_s=30)
        failures.append(str(raised.value))

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(site)
    assert failures == ["GET /dcap: no complete response within 1 s"] * 3


async def test_a_cancelled_leader_hands_over_to_a_waiter(autojump_clock: trio.abc.Clock) -> None:
    shared, origin = SharedGets(), Origin(delay_s=10)
    got: list[bytes] = []

    async def waiter() -> None:
        got.append((await shared.get(KEY, origin.fetch, timeout_s=60)).body)

    async with trio.open_nursery() as nursery:
        with trio.move_on_after(1):  # the leading site restarts while its GET is in flight
            await shared.get(KEY, origin.fetch, timeout_s=60)
            pytest.fail("the leader should have been cancelled")
        nursery.start_soon(waiter)
        nursery.start_soon(waiter)
    assert got == [b"answer 2", b"answer 2"]
    assert origin.calls == 2


async def test_a_waiter_gives_up_at_its_own_deadline(autojump_clock: trio.abc.Clock) -> None:
    shared, origin = SharedGets(), Origin(delay_s=100)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(functools.partial(shared.get, KEY, origin.fetch, timeout_s=200))
        await trio.testing.wait_all_tasks_blocked()  # the leader's GET is in flight
        with pytest.raises(LinkTimeout, match="within 5 s"):
            await shared.get(KEY, origin.fetch, timeout_s=5)
    assert origin.calls == 1


def test_sites_share_one_decoded_document_for_the_same_bytes() -> None:
    from actors.shared_gets import SharedDecodes
    from transport.sep2 import decode
    from transport.sep2 import resources as r

    shared = SharedDecodes(capacity=2)
    body = b'<Time xmlns="urn:ieee:std:2030.5:ns" href="/tm"><currentTime>1</currentTime><dstEndTime>0</dstEndTime><dstOffset>0</dstOffset><dstStartTime>0</dstStartTime><quality>7</quality><tzOffset>0</tzOffset></Time>'
    assert shared.decoded(r.Time, body) is None
    resource = decode(body, r.Time)
    shared.remember(r.Time, body, resource)
    assert shared.decoded(r.Time, bytes(bytearray(body))) is resource  # equal bytes, one object
    assert shared.decoded(r.DeviceCapability, body) is None  # another type is another document
    shared.remember(r.Time, b"<a/>", resource)
    shared.remember(r.Time, b"<b/>", resource)
    assert shared.decoded(r.Time, body) is None  # bounded: the oldest went first
    assert shared.hits == 1


async def test_every_waiter_gets_the_leaders_error_with_its_message_intact(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Review finding 10: copying a BodyTooLarge through its constructor (copy.copy) rebuilt the
    message from the message ("exceeds the message body exceeds the N-byte limit-byte limit")."""
    from transport.errors import BodyTooLarge

    shared = SharedGets()

    async def too_large() -> Response:
        await trio.sleep(1)
        raise BodyTooLarge(65536)

    errors: list[BodyTooLarge] = []

    async def site() -> None:
        with pytest.raises(BodyTooLarge) as raised:
            await shared.get(KEY, too_large, timeout_s=30)
        errors.append(raised.value)

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(site)
    assert [str(e) for e in errors] == ["message body exceeds the 65536-byte limit"] * 3
    assert [(e.limit, e.by_peer) for e in errors] == [(65536, True)] * 3
    assert len({id(e) for e in errors}) == 3  # each waiter raises its own object

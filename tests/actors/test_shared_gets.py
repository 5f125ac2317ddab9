"""Discovery once (issue 19): identical GETs in flight at once go to the server once; nothing is
kept after the answer (no cache, nothing stale)."""

from __future__ import annotations

import functools

import pytest
import trio
import trio.testing

from actors.shared_gets import SharedGets
from transport.errors import ConnectFailed, ConnectionReset, LinkTimeout
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
    calls = 0

    async def fails() -> Response:
        nonlocal calls
        calls += 1
        await trio.sleep(1)
        raise ConnectFailed("cannot connect to derms.example:443: Connection refused")

    failures: list[str] = []

    async def site() -> None:
        with pytest.raises(ConnectFailed) as raised:
            await shared.get(KEY, fails, timeout_s=30)
        failures.append(str(raised.value))

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(site)
    assert failures == ["cannot connect to derms.example:443: Connection refused"] * 3
    assert calls == 1


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


async def test_a_waiter_whose_deadline_runs_out_sends_its_own_get(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Review finding 2: a waiter raised LinkTimeout for a GET it never sent (recorded as its own
    link failure); past its deadline it asks the server itself."""
    shared, origin = SharedGets(), Origin(delay_s=100)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(functools.partial(shared.get, KEY, origin.fetch, timeout_s=200))
        await trio.testing.wait_all_tasks_blocked()  # the leader's GET is in flight
        start = trio.current_time()
        answer = await shared.get(KEY, origin.fetch, timeout_s=5)
        assert trio.current_time() - start == pytest.approx(105)
    assert (answer.body, origin.calls) == (b"answer 2", 2)
    assert (shared.statistics().sent, shared.statistics().own) == (1, 1)


async def test_a_failure_of_the_leaders_own_connection_is_not_handed_to_the_waiters(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Review finding 2: a reset of the leader's kept-alive connection was copied to every site
    that had joined its GET; each of them sends its own instead."""
    shared = SharedGets()
    calls = 0

    async def fetch() -> Response:
        nonlocal calls
        calls += 1
        first = calls == 1
        await trio.sleep(1)
        if first:
            raise ConnectionReset("the server closed the connection", by_peer=True)
        return Response(200, (), b"answer")

    outcomes: list[bytes] = []

    async def site() -> None:
        try:
            outcomes.append((await shared.get(KEY, fetch, timeout_s=30)).body)
        except ConnectionReset:
            outcomes.append(b"reset")

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(site)
    assert outcomes == [b"reset", b"answer", b"answer"]  # only the leader's own GET was reset
    assert calls == 3
    assert (shared.statistics().sent, shared.statistics().own) == (1, 2)


async def test_a_site_whose_connection_is_busy_never_leads(
    autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review finding 2: site A's GET led while A's connection was busy with a slow POST (25 s,
    under its 30 s timeout), and site B, joined to it, timed out at its own 10 s for a GET it never
    sent. A site whose connection is busy sends its GET itself; B leads."""
    import ssl

    from actors.https import HttpsClient
    from actors.shared_gets import CoalescingClient

    sent: list[tuple[str, str]] = []

    async def one_at_a_time(  # as HttpsClient.request: the connection's lock, then the request
        self: HttpsClient, method: str, target: str, **_: object
    ) -> Response:
        async with self._lock:
            sent.append((method, target))
            await trio.sleep(25 if method == "POST" else 1)
            return Response(200, (), f"{method} {target}".encode())

    monkeypatch.setattr(HttpsClient, "request", one_at_a_time)
    shared = SharedGets()
    context = ssl.create_default_context()
    a, b = (
        CoalescingClient("derms.example", 443, context, shared=shared, identity="AGGREGATOR")
        for _ in range(2)
    )
    answers: dict[str, object] = {}

    async def site_a_get() -> None:
        answers["a"] = (await a.request("GET", "/dcap", timeout_s=30)).body

    async with trio.open_nursery() as nursery:
        nursery.start_soon(functools.partial(a.request, "POST", "/mup/1", body=b"<x/>"))
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(site_a_get)
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        try:
            answers["b"] = (await b.request("GET", "/dcap", timeout_s=10)).body
        except LinkTimeout as error:
            answers["b"] = f"{error} after {trio.current_time() - start:g} s"
        assert trio.current_time() - start == pytest.approx(1)
    assert answers == {"a": b"GET /dcap", "b": b"GET /dcap"}
    assert sorted(sent) == [("GET", "/dcap"), ("GET", "/dcap"), ("POST", "/mup/1")]


def test_sites_share_one_decoded_document_for_the_same_bytes() -> None:
    from actors.shared_gets import SharedDecodes
    from transport.sep2 import decode
    from transport.sep2 import resources as r

    shared = SharedDecodes(capacity=2)
    body = b'<Time xmlns="urn:ieee:std:2030.5:ns" href="/tm"><currentTime>1</currentTime><dstEndTime>0</dstEndTime><dstOffset>0</dstOffset><dstStartTime>0</dstStartTime><quality>7</quality><tzOffset>0</tzOffset></Time>'
    assert shared.decoded(r.Time, body) is None
    resource = decode(body, r.Time)
    shared.remember(r.Time, body, resource)
    other_copy = bytes(bytearray(body))
    found = shared.decoded(r.Time, other_copy)
    assert found is not None
    kept, decoded = found
    assert decoded is resource  # equal bytes, one object
    assert kept == other_copy and kept is not other_copy  # and one copy of the bytes to keep
    assert shared.decoded(r.DeviceCapability, body) is None  # another type is another document
    shared.remember(r.Time, b"<a/>", resource)
    assert shared.decoded(r.Time, body) is not None  # used again: now the most recent
    shared.remember(r.Time, b"<b/>", resource)
    assert shared.decoded(r.Time, b"<a/>") is None  # bounded: the least recently used went
    assert shared.decoded(r.Time, body) is not None
    shared.remember(r.Time, b"<c/>", resource)
    shared.remember(r.Time, b"<d/>", resource)
    assert shared.decoded(r.Time, body) is None
    assert shared.hits == 3


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

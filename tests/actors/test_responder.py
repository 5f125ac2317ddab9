"""The responder reports what the server answered, never a status it assumed (§4 rule 16: the log
records intended, sent, acked and failed as observed)."""

from __future__ import annotations

import anyio
import msgspec
import pytest
import trio.testing

from actors.clock import Clock
from actors.link import HttpFailure
from actors.messages import ControlsInput, ResponseOutcome, SendResponse
from actors.responder import RESPONSE_BURST, RESPONSE_PACE_S, ResponderActor
from events.control_events import NOT_SENT, ResponseIntended
from events.der_model import ResponseStatus

LFDI = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"


class AnsweringLink:
    """A link whose POSTs get the given answer: an HTTP status, or an HttpFailure to raise."""

    def __init__(self, answer: int | HttpFailure) -> None:
        self.answer = answer
        self.posted: list[tuple[str, msgspec.Struct]] = []

    async def post_answered(self, path: str, resource: msgspec.Struct) -> tuple[int, str | None]:
        self.posted.append((path, resource))
        if isinstance(self.answer, HttpFailure):
            raise self.answer
        return self.answer, None


async def outcome_of(link: AnsweringLink, reply_to: str | None) -> ResponseOutcome:
    to_responder, inbox = anyio.create_memory_object_stream[SendResponse](1)
    report, outcomes = anyio.create_memory_object_stream[ControlsInput](1)
    responder = ResponderActor(link=link, inbox=inbox, report=report, clock=Clock())  # type: ignore[arg-type]
    intended = ResponseIntended(
        mrid="0A", status=ResponseStatus.RECEIVED, lfdi=LFDI, reply_to=reply_to, created_s=5, at_s=5
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(responder.run)
        async with to_responder:
            await to_responder.send(SendResponse(response=intended))
            got = await outcomes.receive()
        tg.cancel_scope.cancel()
    assert isinstance(got, ResponseOutcome)
    return got


@pytest.mark.parametrize("answer", [200, 201, 204])
async def test_an_acknowledgement_carries_the_status_the_server_answered(answer: int) -> None:
    got = await outcome_of(AnsweringLink(answer), "/rsp")
    assert (got.acked, got.http_status, got.undeliverable) == (True, answer, None)


async def test_a_refusal_carries_the_servers_status() -> None:
    got = await outcome_of(AnsweringLink(HttpFailure("POST", "/rsp", 409)), "/rsp")
    assert (got.acked, got.http_status) == (False, 409)


async def test_no_reply_to_is_not_sent_and_claims_no_status() -> None:
    link = AnsweringLink(201)
    got = await outcome_of(link, None)
    assert (got.acked, got.http_status, got.undeliverable) == (False, None, NOT_SENT)
    assert link.posted == []


async def test_responses_are_paced_beyond_a_burst(autojump_clock: trio.testing.MockClock) -> None:
    """Issue 15 point 3: a page of a hundred controls is not a hundred POSTs at once: up to
    RESPONSE_BURST go back to back, then one every RESPONSE_PACE_S."""
    link = AnsweringLink(201)
    times: list[float] = []
    original = link.post_answered

    async def timed(path: str, resource: msgspec.Struct) -> tuple[int, str | None]:
        times.append(anyio.current_time())
        return await original(path, resource)

    link.post_answered = timed  # type: ignore[method-assign]
    count = RESPONSE_BURST + 20
    to_responder, inbox = anyio.create_memory_object_stream[SendResponse](count)
    report, outcomes = anyio.create_memory_object_stream[ControlsInput](count)
    responder = ResponderActor(link=link, inbox=inbox, report=report, clock=Clock())  # type: ignore[arg-type]
    async with anyio.create_task_group() as tg:
        tg.start_soon(responder.run)
        async with to_responder:
            for i in range(count):
                intended = ResponseIntended(
                    mrid=f"{i + 1:X}",
                    status=ResponseStatus.RECEIVED,
                    lfdi=LFDI,
                    reply_to="/rsp",
                    created_s=5,
                    at_s=5,
                )
                to_responder.send_nowait(SendResponse(response=intended))
            for _ in range(count):
                await outcomes.receive()
        tg.cancel_scope.cancel()
    start = times[0]
    assert all(t == start for t in times[:RESPONSE_BURST])
    gaps = [
        b - a for a, b in zip(times[RESPONSE_BURST - 1 :], times[RESPONSE_BURST:], strict=False)
    ]
    assert gaps and all(gap >= RESPONSE_PACE_S - 1e-9 for gap in gaps), gaps
    # at most 20 a minute beyond the burst
    assert times[-1] - start >= (count - RESPONSE_BURST) * RESPONSE_PACE_S - 1e-9

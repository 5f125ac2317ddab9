"""The responder reports what the server answered, never a status it assumed (§4 rule 16: the log
records intended, sent, acked and failed as observed)."""

from __future__ import annotations

import anyio
import msgspec
import pytest

from actors.link import HttpFailure
from actors.messages import ControlsInput, ResponseOutcome, SendResponse
from actors.responder import ResponderActor
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
    responder = ResponderActor(link=link, inbox=inbox, report=report)  # type: ignore[arg-type]
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

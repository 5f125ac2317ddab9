"""Response profiles, bit gating and legal sequences (PROTOCOL.md §1, §4 rules 2, 3, 7, 9, 16)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.der_model import ResponseStatus
from statemachines.responses import (
    CORE_2018,
    CSIP,
    CSIP_AUS,
    PROFILES,
    SAPN,
    TERMINAL_RESPONSES,
    legal_next,
    required_bit,
    should_send,
)

R = ResponseStatus


def test_profiles_are_named_and_distinct() -> None:
    assert set(PROFILES) == {"2030.5-2018", "CSIP", "CSIP-AUS", "SAPN"}


@pytest.mark.parametrize("status", list(ResponseStatus))
def test_sapn_profile_allows_only_1_2_3_6_7(status: ResponseStatus) -> None:
    allowed = int(status) in {1, 2, 3, 6, 7}
    assert (status in SAPN.allowed) is allowed
    if not allowed:
        assert not should_send(SAPN, 0b111, [], status)
        assert not should_send(SAPN, 0b111, [R.RECEIVED], status)


@pytest.mark.parametrize("profile", [CORE_2018, CSIP, CSIP_AUS])
def test_core_csip_and_csip_aus_allow_every_code(profile: object) -> None:
    assert profile.allowed == frozenset(ResponseStatus)  # type: ignore[attr-defined]


def test_csip_aus_writes_the_lfdi_in_upper_case() -> None:
    assert CSIP_AUS.lfdi("3e4f") == "3E4F"
    assert CORE_2018.lfdi("3E4F") == "3e4f"


@pytest.mark.parametrize(
    ("status", "bit"),
    [
        (R.RECEIVED, 0),
        (R.STARTED, 1),
        (R.COMPLETED, 1),
        (R.CANCELLED, 1),
        (R.SUPERSEDED, 1),
        (R.ABORTED_OTHER_PROGRAM, 1),
        (R.RECEIVED_LATE, 1),
        (R.OPT_OUT, 2),
        (R.OPT_IN, 2),
        (R.PARTIAL_OPT_OUT, 2),
        (R.PARTIAL_OPT_IN, 2),
    ],
)
def test_response_required_bits_gate_codes(status: ResponseStatus, bit: int) -> None:
    assert required_bit(status) == bit
    if status is R.COMPLETED:
        sent = [R.RECEIVED, R.STARTED]
    elif status in (R.RECEIVED, R.RECEIVED_LATE):
        sent = []
    else:
        sent = [R.RECEIVED]
    assert should_send(CORE_2018, 1 << bit, sent, status)
    assert not should_send(CORE_2018, 0b111 & ~(1 << bit), sent, status)


@pytest.mark.parametrize(
    ("sent", "status", "legal"),
    [
        ([], R.RECEIVED, True),
        ([R.RECEIVED], R.RECEIVED, False),  # each status at most once
        ([R.RECEIVED], R.COMPLETED, False),  # 3 only after 2
        ([R.RECEIVED, R.STARTED], R.COMPLETED, True),
        ([R.RECEIVED, R.SUPERSEDED], R.STARTED, False),  # superseded before start: never 2
        ([R.RECEIVED, R.STARTED, R.COMPLETED], R.CANCELLED, False),  # nothing after terminal
        ([R.RECEIVED], R.CANCELLED, True),  # 6 also for an event that never started
        ([R.RECEIVED], R.RECEIVED_LATE, False),  # 254 only first
        ([], R.RECEIVED_LATE, True),
    ],
)
def test_rule16_legal_response_sequences(
    sent: list[ResponseStatus], status: ResponseStatus, legal: bool
) -> None:
    assert legal_next(sent, status) is legal


@settings(max_examples=200)
@given(st.lists(st.sampled_from(list(ResponseStatus)), max_size=12))
def test_property_filtering_by_legal_next_gives_no_duplicates_and_one_terminal_at_most(
    attempts: list[ResponseStatus],
) -> None:
    sent: list[ResponseStatus] = []
    for status in attempts:
        if legal_next(sent, status):
            sent.append(status)
    assert len(sent) == len(set(sent))
    assert sum(s in TERMINAL_RESPONSES for s in sent) <= 1
    if R.COMPLETED in sent:
        assert sent.index(R.STARTED) < sent.index(R.COMPLETED)

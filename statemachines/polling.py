"""Polling and posting schedules (PROTOCOL.md §4 rule 15, §2.8, §4 rule 12).

Each list is polled at the ``pollRate`` of the resource that contains it; a changed rate applies from
the next cycle, and a resource is never polled sooner than its rate after its last poll (conformance
harnesses count extra polls as failures). On recovery from comms loss everything is due at once.
Readings are posted at ``postRate`` on whole-minute boundaries (seconds = 0).

Whatever rate a server sends, the one used lies in a sane window (issue 15); one outside it is a
server fault, recorded (``RateBounded``) with the rate sent and the rate used:

- ``pollRate`` within [:data:`MIN_POLL_S`, :data:`MAX_POLL_S`] = [10 s, 1 day]. 10 s is the fastest
  rate conformance harnesses and our own test worlds ask for; a day bounds the wait for a control
  a server meant to be seen (4,000,000,000 s would stop polling for ~127 years). A rate outside
  is not one a utility means: it is used as the schema's default, :data:`FAULT_POLL_S` = 900 s,
  as a pollRate of 0 or none is, not as the nearest bound (1 s bounded to 10 s would still make
  the ~11 resources a site polls ~70 GETs a minute).
- ``postRate`` within [:data:`MIN_POST_S`, :data:`MAX_POST_S`] = [60 s, 1 day], a rate outside
  used as the nearest bound: posts fall on whole minutes (§2.8), so nothing finer than a minute
  can be carried out (one POST a minute per MirrorUsagePoint is cheap); CSIP-AUS sites post 1- to
  5-minute readings, and a day keeps readings flowing whatever the server says.
"""

from __future__ import annotations

import math
from typing import Final

import msgspec

from events.base import Event
from events.control_events import CommsRestored
from events.registration_events import (
    Polled,
    PollRateSeen,
    PollsShifted,
    Posted,
    PostRateSeen,
    RateBounded,
)
from events.replay import Projection
from events.subscription_events import PollPrompted

__all__ = [
    "FAULT_POLL_S",
    "MAX_POLL_S",
    "MAX_POST_S",
    "MIN_POLL_S",
    "MIN_POST_S",
    "PROMPT_MIN_GAP_S",
    "POLL_PROJECTION",
    "PollEntry",
    "PollSchedule",
    "PollState",
    "PostEntry",
    "bounded_post_rate",
    "evolve_poll",
    "next_post_s",
]


#: The sane window of a server's pollRate (module docstring: why these numbers).
MIN_POLL_S: Final = 10
MAX_POLL_S: Final = 86_400
#: The pollRate used instead of one outside the window: the schema's default, as for none sent.
FAULT_POLL_S: Final = 900
#: The sane window of a server's postRate (whole minutes, §2.8).
MIN_POST_S: Final = 60
MAX_POST_S: Final = 86_400
#: A notification makes its poll due at once, but never sooner than this after the poll's last
#: read: the fastest pollRate we accept, so a flood of notifications costs at most what a server
#: asking the fastest sane rate would (one read per 10 s per list), never one read per POST.
PROMPT_MIN_GAP_S: Final = MIN_POLL_S


def bounded_post_rate(rate_s: int) -> int:
    """Issue 15: the postRate used for one the server sent, the nearest rate in
    [:data:`MIN_POST_S`, :data:`MAX_POST_S`]."""
    return min(max(rate_s, MIN_POST_S), MAX_POST_S)


class PollEntry(msgspec.Struct, kw_only=True):
    rate_s: int
    next_s: float
    last_s: float | None = None
    pending_rate_s: int | None = None


class PostEntry(msgspec.Struct, kw_only=True):
    rate_s: int
    next_s: float
    last_s: float | None = None


class PollState(msgspec.Struct, kw_only=True):
    polls: dict[str, PollEntry] = msgspec.field(default_factory=dict)
    posts: dict[str, PostEntry] = msgspec.field(default_factory=dict)


def next_post_s(after_s: float, rate_s: int) -> int:
    """§2.8: the first whole-minute instant strictly after ``after_s`` on the ``postRate`` grid.

    A rate that is a whole number of minutes posts on multiples of the rate (300 s → :00, :05, …);
    any other rate posts at the first whole minute at least one rate after ``after_s``.
    """
    if rate_s <= 0:
        raise ValueError(f"postRate must be positive, got {rate_s}")
    if rate_s % 60 == 0:
        return (math.floor(after_s / rate_s) + 1) * rate_s
    return math.ceil((after_s + rate_s) / 60) * 60


def evolve_poll(state: PollState, event: Event) -> PollState:
    """Apply one event (in place): the fold of the ``poll`` stream (plus comms recovery)."""
    match event:
        case PollRateSeen(resource=resource, rate_s=rate, at_s=at_s):
            entry = state.polls.get(resource)
            if entry is None:
                # Seen while its container was fetched during discovery: next poll one rate later.
                state.polls[resource] = PollEntry(rate_s=rate, next_s=at_s + rate)
            elif rate != entry.rate_s:
                entry.pending_rate_s = rate
            else:
                entry.pending_rate_s = None
        case Polled(resource=resource, at_s=at_s):
            entry = state.polls[resource]
            if entry.pending_rate_s is not None:
                entry.rate_s, entry.pending_rate_s = entry.pending_rate_s, None
            entry.last_s = at_s
            entry.next_s = at_s + entry.rate_s
        case PostRateSeen(mirror=mirror, rate_s=rate, at_s=at_s):
            post = state.posts.get(mirror)
            if post is None:
                state.posts[mirror] = PostEntry(rate_s=rate, next_s=next_post_s(at_s, rate))
            else:
                post.rate_s = rate
        case Posted(mirror=mirror, at_s=at_s):
            post = state.posts[mirror]
            post.last_s = at_s
            post.next_s = next_post_s(at_s, post.rate_s)
        case CommsRestored(at_s=at_s):
            for entry in state.polls.values():
                entry.next_s = at_s
        case PollPrompted(poll=poll, at_s=at_s):
            # Issue 19 point 3: a notification makes this poll due now, but never sooner than
            # PROMPT_MIN_GAP_S after its last read (each small POST would otherwise buy a full
            # read of the list); a poll already due sooner stays so. The read it prompts is a
            # poll (``Polled``): the next one a pollRate later.
            prompted = state.polls.get(poll)
            if prompted is not None:
                earliest = at_s
                if prompted.last_s is not None:
                    earliest = max(earliest, prompted.last_s + PROMPT_MIN_GAP_S)
                prompted.next_s = min(prompted.next_s, earliest)
        case PollsShifted(by_s=by_s, at_s=at_s):
            # Intervals are kept on the device's clock; posts stay on the server's minute grid.
            for entry in state.polls.values():
                entry.next_s += by_s
                if entry.last_s is not None:
                    entry.last_s += by_s
            for post in state.posts.values():
                if post.last_s is not None:
                    post.last_s += by_s
                post.next_s = next_post_s(
                    post.last_s if post.last_s is not None else at_s + by_s, post.rate_s
                )
        case _:
            pass
    return state


_PRISTINE_POLLSTATE: Final = PollState()


def _evolve_from_pristine(state: PollState, event: Event) -> PollState:
    """The projection's evolve: folds mutate in place, so the shared initial is never the target."""
    if state is _PRISTINE_POLLSTATE:
        state = PollState()
    return evolve_poll(state, event)


POLL_PROJECTION: Final = Projection(
    name="poll",
    initial=_PRISTINE_POLLSTATE,
    evolve=_evolve_from_pristine,
    state_type=PollState,
    types=(
        PollRateSeen, Polled, PollsShifted, PostRateSeen, Posted, CommsRestored, PollPrompted
    ),
)


class PollSchedule:
    """Sans-IO: tell it what was seen and done; ask what is due and when to wake."""

    __slots__ = ("state",)

    def __init__(self, state: PollState | None = None) -> None:
        self.state = state if state is not None else PollState()

    def _emit(self, out: list[Event], event: Event) -> list[Event]:
        evolve_poll(self.state, event)
        out.append(event)
        return out

    def rate_seen(self, resource: str, rate_s: int, now: float) -> list[Event]:
        """§4 rule 15: the containing resource's ``pollRate``; a change applies on the next cycle.

        Issue 15: a rate outside [:data:`MIN_POLL_S`, :data:`MAX_POLL_S`] is used as
        :data:`FAULT_POLL_S`, recorded first as a ``RateBounded`` server fault (once per change of
        the rate used, so a server repeating it is not recorded again)."""
        if rate_s <= 0:
            raise ValueError(f"pollRate of {resource} must be positive, got {rate_s}")
        used = rate_s if MIN_POLL_S <= rate_s <= MAX_POLL_S else FAULT_POLL_S
        entry = self.state.polls.get(resource)
        if entry is not None and used == (entry.pending_rate_s or entry.rate_s):
            return []
        out: list[Event] = []
        if used != rate_s:
            out.append(
                RateBounded(
                    kind="poll",
                    resource=resource,
                    sent_s=rate_s,
                    used_s=used,
                    low_s=MIN_POLL_S,
                    high_s=MAX_POLL_S,
                    at_s=now,
                )
            )
        return self._emit(out, PollRateSeen(resource=resource, rate_s=used, at_s=now))

    def polled(self, resource: str, now: float) -> list[Event]:
        entry = self.state.polls.get(resource)
        if entry is None:
            raise KeyError(f"{resource} has no pollRate yet; record rate_seen first")
        if now < entry.next_s:
            raise ValueError(f"{resource} polled at {now}, before it is due at {entry.next_s}")
        return self._emit([], Polled(resource=resource, at_s=now))

    def post_rate_seen(
        self, mirror: str, rate_s: int, now: float, *, sent_s: int | None = None
    ) -> list[Event]:
        """§2.8: the postRate in force. Issue 15: ``sent_s`` is the postRate the server sent when
        ``rate_s`` is not it (:func:`bounded_post_rate`: outside [:data:`MIN_POST_S`,
        :data:`MAX_POST_S`]), recorded first as a ``RateBounded`` server fault; a rate itself
        outside the window is bounded here too."""
        if rate_s <= 0:
            raise ValueError(f"postRate of {mirror} must be positive, got {rate_s}")
        used = bounded_post_rate(rate_s)
        sent = rate_s if sent_s is None else sent_s
        post = self.state.posts.get(mirror)
        if post is not None and post.rate_s == used:
            return []
        out: list[Event] = []
        if used != sent:
            out.append(
                RateBounded(
                    kind="post",
                    resource=mirror,
                    sent_s=sent,
                    used_s=used,
                    low_s=MIN_POST_S,
                    high_s=MAX_POST_S,
                    at_s=now,
                )
            )
        return self._emit(out, PostRateSeen(mirror=mirror, rate_s=used, at_s=now))

    def posted(self, mirror: str, now: float) -> list[Event]:
        if mirror not in self.state.posts:
            raise KeyError(f"{mirror} has no postRate yet; record post_rate_seen first")
        return self._emit([], Posted(mirror=mirror, at_s=now))

    def shifted(self, by_s: float, now: float) -> list[Event]:
        """§2.2 with §4 rule 15: the server's clock stepped by ``by_s`` (``now`` on the clock
        before the step); the schedule moves with it. Nothing for no step."""
        if not by_s:
            return []
        return self._emit([], PollsShifted(by_s=by_s, at_s=now))

    def comms_restored(self, event: CommsRestored) -> None:
        """§4 rule 12: re-poll everything on recovery. The event is the controls actor's (one fact,
        recorded once); the schedule applies it as the fold of the log does, emitting nothing."""
        evolve_poll(self.state, event)

    def prompted(self, poll: str, resource: str, notification_seq: int, now: float) -> list[Event]:
        """Issue 19 point 3: the notification recorded at ``notification_seq`` makes ``poll`` due
        now (nothing for a poll the schedule does not hold: the walk reads it first anyway)."""
        if poll not in self.state.polls:
            return []
        return self._emit(
            [],
            PollPrompted(
                poll=poll, resource=resource, notification_seq=notification_seq, at_s=now
            ),
        )

    def due_polls(self, now: float) -> list[str]:
        return sorted(r for r, e in self.state.polls.items() if e.next_s <= now)

    def due_posts(self, now: float) -> list[str]:
        return sorted(m for m, p in self.state.posts.items() if p.next_s <= now)

    def next_deadline(self) -> float | None:
        times = [e.next_s for e in self.state.polls.values()]
        times += [p.next_s for p in self.state.posts.values()]
        return min(times) if times else None

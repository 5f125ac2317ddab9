"""The registration actor: discovery and registration (PROTOCOL.md §2), then polling.

It drives the pure :class:`statemachines.registration.RegistrationCore` (one HTTP step at a time,
back-off and halts decided there) and :class:`statemachines.polling.PollSchedule` (when each list is
due), fetching through the :class:`actors.link.Link`. What it learns about programs, defaults and
controls goes to the controls actor as domain values; what it must tell the server (EndDevice,
ConnectionPoint, DER information, MirrorUsagePoints) it PUTs and POSTs. Links are always followed
from what the server returned, never built (§2). Every decision is durable before it is acted on.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Final

import anyio
import msgspec
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectSendStream

from actors import der_info
from actors.clock import Clock
from actors.discovery import discover_device_capability
from actors.link import BadDocument, HttpFailure, Link, LinkBackingOff
from actors.log_writer import LogWriter
from actors.mailbox import Latest
from actors.messages import (
    ControlsInput,
    ControlsNews,
    ControlsSeen,
    DefaultSeen,
    DerSnapshot,
    DerStatusTarget,
    MemberSnapshot,
    ProgramsSeen,
    TariffLinks,
)
from actors.rng import RandomSource
from actors.subscriptions import PollPrompt, PollPrompts, SubscriptionTargets
from events.base import Event, tag_of
from events.der_events import DerListMatched
from events.der_model import Control, DefaultControl, Program
from events.envelope import Append
from events.log_events import LogSetAsideReported, PreviousLogSetAside
from events.registration_events import (
    Polled,
    RegistrationStep,
    TimeOffsetLearned,
    registration_event_stream,
)
from events.replay import replay
from events.runtime_events import RUNTIME_STREAM
from events.store import EventStore
from statemachines.controls import RECEIPT_STEP
from statemachines.der_matching import match_ders, mismatch_finding
from statemachines.polling import (
    POLL_PROJECTION,
    PollSchedule,
    PollState,
    bounded_post_rate,
    evolve_poll,
)
from statemachines.registration import (
    HALTED,
    IN_BAND_PROJECTION,
    READY,
    TIME_RESYNC_S,
    RegistrationConfig,
    RegistrationCore,
)
from statemachines.subscriptions import SubscriptionTarget, is_subscribable
from transport.errors import LinkError
from transport.sep2 import SchemaViolation
from transport.sep2 import resources as r
from transport.sep2.hexbinary import HexBinary32, HexBinary160
from transport.sep2.mapping import (
    availability_to_wire,
    capability_to_wire,
    controls_from_wire,
    default_control_from_wire,
    program_from_wire,
    settings_to_wire,
)

__all__ = ["Identity", "MirrorTargets", "RegistrationActor", "WalkSettings"]

logger = logging.getLogger(__name__)

#: pollRate when neither a resource, its list nor the DeviceCapability says (the schema's default).
DEFAULT_POLL_S: Final = 900


#: The alarm a log short of space or full raises beside the DER's own (issue 16 point 5).
LOG_FULL_ALARM = "LOG_FULL"


class Identity(msgspec.Struct, frozen=True, kw_only=True):
    """Who this gateway is to the server (from its certificate and configuration)."""

    lfdi: str
    sfdi: int
    device_category: int


class WalkSettings(msgspec.Struct, frozen=True, kw_only=True):
    dcap_path: str
    #: Issue 18 point 3: try CSIP-AUS v1.3 service discovery (``/.well-known/csipaus``) before
    #: the first DeviceCapability; ``dcap_path`` is the fallback.
    well_known: bool = False
    register_in_band: bool = True
    nmi: str | None = None
    default_post_s: int = 300
    #: IANA Private Enterprise Number written as ``logEventPEN`` of our LogEvents.
    pen: int = 0
    #: A site of several DER (``[[ders]]``): each one's name and the server DER href its
    #: configuration names (``None``: matched by order; ``statemachines.der_matching``). Empty for
    #: a single DER, which is the DERList's first DER as it always was.
    ders: tuple[tuple[str, str | None], ...] = ()


class MirrorTargets(msgspec.Struct, frozen=True, kw_only=True):
    """Where the mirror actor posts readings: the MirrorUsagePoint list and the postRate.

    ``listed``: the hrefs of our MirrorUsagePoints the MirrorUsagePointList held when last read
    (§4 rule 15; ``None``: not read yet), asked for at server time ``listed_at_s``. The mirror
    forgets every other one it knew before then, so it is created again (§2.8: re-create the MUP
    if the server lost it); one it created since is not in that listing and is not lost."""

    mup_list: str
    post_rate_s: int
    #: The postRate the server sent when ``post_rate_s`` is not it (issue 15: outside the sane
    #: window, statemachines.polling.bounded_post_rate); the mirror records the fault.
    post_rate_sent_s: int | None = None
    listed: tuple[str, ...] | None = None
    listed_at_s: float | None = None


def _sent(post_rate_s: int) -> int | None:
    """Issue 15: the postRate sent, kept beside the one used only when they differ."""
    return None if bounded_post_rate(post_rate_s) == post_rate_s else post_rate_s


class _Discovered:
    """Links learned by the current walk (rebuilt by walking again after a restart or a 301/404)."""

    def __init__(self) -> None:
        self.dcap: r.DeviceCapability | None = None
        self.edev: r.EndDevice | None = None
        self.edev_href: str | None = None
        self.program_lists: dict[str, str] = {}  # FSA href -> DERProgramList href
        self.programs: dict[str, tuple[Program, ...]] = {}  # DERProgramList href -> its programs
        self.defaults: dict[str, DefaultControl | None] = {}
        self.der_hrefs: r.DER | None = None
        #: A site of several DER: the server DER each configured DER is reported as, by name.
        self.der_members: dict[str, r.DER] = {}


class RegistrationActor:
    def __init__(
        self,
        *,
        identity: Identity,
        walk: WalkSettings,
        config: RegistrationConfig,
        link: Link,
        store: EventStore,
        log: LogWriter,
        clock: Clock,
        rng: RandomSource,
        to_controls: MemoryObjectSendStream[ControlsInput],
        der: Latest[DerSnapshot],
        news: Latest[ControlsNews] | None = None,
        mirror_targets: Latest[MirrorTargets] | None = None,
        der_status_target: Latest[DerStatusTarget] | None = None,
        log_alarm: Latest[int] | None = None,
        pricing_targets: Latest[TariffLinks] | None = None,
        subscription_targets: Latest[SubscriptionTargets] | None = None,
        poll_prompts: Latest[PollPrompts] | None = None,
        member_status_targets: dict[str, Latest[DerStatusTarget]] | None = None,
        member_mirror_targets: tuple[Latest[MirrorTargets], ...] = (),
    ) -> None:
        """``der``: the hardware actor's mailbox of what the DER reported (read, never taken).
        ``news``: the controls actor's (PROTOCOL.md §4 rule 12, §2.7), taken before the poll
        schedule is next read or changed, and waking the poll loop.
        ``mirror_targets``: the mirror actor's mailbox. ``der_status_target``: where the DERStatus
        href goes once the walk found the DER (the DER status actor PUTs DERStatus; this actor the
        other DER documents). ``log_alarm``: how many times the log has run short of space or full
        (issue 16 point 5): each new time is reported once beside the DER's alarms, even if it
        passed while this actor waited on that very log. ``pricing_targets``: the pricing actor's
        mailbox of the TariffProfileList links our FSAs reference (after every FSA poll).
        ``subscription_targets``: the subscription actor's mailbox of the subscribable resources
        the walk found (issue 19 point 3); ``poll_prompts``: the polls notifications made due now,
        taken before the poll schedule is next read, and waking the poll loop;
        ``member_status_targets``: a site of several DER: each DER's DERStatus href goes to its
        own DER status actor, by name; ``member_mirror_targets``: each DER's own mirror's mailbox,
        told what the site's mirror is told."""
        self._identity = identity
        self._walk = walk
        self._config = config
        self._link = link
        self._store = store
        self._log = log
        self._clock = clock
        self._rng = rng
        self._to_controls = to_controls
        self._der_reported = der
        self._news = news
        self._mirror_targets = mirror_targets
        self._der_status_target = der_status_target
        self._log_alarm = log_alarm
        self._pricing_targets = pricing_targets
        self._subscription_targets = subscription_targets
        self._poll_prompts = poll_prompts
        self._subscriptions_told: SubscriptionTargets | None = None
        #: poll key -> {subscribable href it reads: rank} (rank: EndDevice 0, FSA list 1, program
        #: list 2, default 3, control list 4: the order subscriptions are asked for).
        self._subscribable: dict[str, dict[str, int]] = {}
        self._subscribable_before: dict[str, dict[str, int]] = {}
        #: poll key -> the notification that made it due now (its record, time and resource).
        self._prompted: dict[str, PollPrompt] = {}
        #: The notification behind the poll being read now: handed on with the controls of the
        #: resource it named only (a poll reads every program's lists; the notification was
        #: about one of them).
        self._prompt_cause: PollPrompt | None = None
        self._tariffs_told: TariffLinks | None = None
        self._log_alarms_reported = 0
        self._status_told: str | None = None
        self._member_status_targets = member_status_targets or {}
        self._member_mirror_targets = member_mirror_targets
        self._members_told: dict[str, str] = {}
        self._last_match: DerListMatched | None = None
        self.core = RegistrationCore(config)
        self._polls = PollSchedule()
        self._found = _Discovered()
        #: The DeviceCapability path: the configured one, or the one discovery chose.
        self._dcap_path = walk.dcap_path
        self._discovery_done = not walk.well_known
        self._last_der_settings: dict[str, object] = {}  # by DERSettings href
        self._der_info_now = False
        self._alarms_reported: set[str] = set()
        self._der_info_owed = False
        self._der_info_failures = 0
        self._targets: MirrorTargets | None = None
        #: Server time before which no request is made (a 429/503's Retry-After; not persisted:
        #: after a restart the server repeats it if it still applies).
        self._hold_until = float("-inf")
        #: A program's default or control list that could not be read (skipped for one cycle).
        self._unread = 0
        #: The record of a previous log set aside at start whose alarm is not yet reported.
        self._set_aside: tuple[int, PreviousLogSetAside] | None = None

    def _note_retry_after(self, failure: Exception) -> None:
        """429/503 with Retry-After: the server said when it may be asked again (RFC 9110 §10.2.3);
        our own back-off or pollRate may be shorter, so nothing is asked before then."""
        retry_after = getattr(failure, "retry_after_s", None)
        if retry_after is not None and retry_after > 0:
            self._hold_until = max(self._hold_until, self._clock.server_time() + retry_after)

    async def _honour_retry_after(self) -> None:
        if self._hold_until > self._clock.server_time():
            await self._clock.sleep_until_server_time(self._hold_until)

    @property
    def polls(self) -> PollSchedule:
        """The poll schedule, with the controls actor's news taken first: whatever this actor
        does to the schedule comes after every message that arrived while it waited, exactly as
        if it had been applied on arrival."""
        self._take_news()
        return self._polls

    def _take_news(self) -> None:
        """The controls actor's news (:class:`ControlsNews`). The link is back (its CommsRestored
        is durable): fold it into the poll schedule as a replay of the log does, so everything is
        due now (PROTOCOL.md §4 rule 12). A control started (durable): the DER information is PUT
        now, not at the next poll (§2.7: re-PUT after each control takes effect)."""
        if self._news is None or not self._news.fresh:
            return
        news = self._news.take_nowait()
        if news.comms_restored is not None:
            self._polls.comms_restored(news.comms_restored)
        if news.control_took_effect:
            self._der_info_now = True

    async def _sleep_until_due(self, deadline: float) -> None:
        """Sleep until ``deadline`` (server time) or until the controls actor sends news. The
        server clock's offset cannot change meanwhile: this actor is the one that adopts it."""
        while (remaining := deadline - self._clock.server_time()) > 0:
            if self._news is None and self._poll_prompts is None:
                await self._clock.sleep_until_server_time(deadline)
                return
            with anyio.move_on_after(remaining):
                if self._poll_prompts is None:
                    assert self._news is not None
                    await self._news.wait()
                    return
                # Notifications configured (issue 19 point 3): a prompt wakes the loop too.
                async with anyio.create_task_group() as group:
                    for box in (self._news, self._poll_prompts):
                        if box is not None:
                            group.start_soon(_wake_on, box, group.cancel_scope)
                return

    def _poll_s(self, own: int | None) -> int:
        """§4 rule 15: a resource's pollRate is its own (or its list's, passed as ``own``), else
        the DeviceCapability's, else the schema's default."""
        if own:
            return own
        dcap = self._found.dcap
        return dcap.pollRate if dcap is not None and dcap.pollRate else DEFAULT_POLL_S

    def _draw(self, low: int, high: int) -> int:
        return self._rng.integer(low, high)

    async def _persist(self, events: Sequence[Event]) -> None:
        if not events:
            return
        reading = self._clock.read()
        appends: list[Append] = []
        for event in events:
            stream = registration_event_stream(event)
            if appends and appends[-1].stream == stream:
                appends[-1] = msgspec.structs.replace(
                    appends[-1], events=(*appends[-1].events, event)
                )
            else:
                appends.append(
                    Append(
                        stream=stream,
                        events=(event,),
                        server_time=reading.server_time,
                        monotonic=reading.monotonic,
                    )
                )
        await self._log.append(appends)
        for event in events:
            if isinstance(event, TimeOffsetLearned):
                # Act only once it is durable: from now on the server's clock is ours.
                self._clock.adopt_server_offset(self._clock.offset_s + event.offset_s)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with self._to_controls:
            state, _ = replay(self._store, POLL_PROJECTION)
            self._polls = PollSchedule(
                msgspec.json.decode(msgspec.json.encode(state), type=PollState)
            )
            # The walk always starts afresh: links are learned, never remembered across restarts;
            # only which EndDevices this gateway registered itself is (§2.4: no PIN to compare).
            in_band, _ = replay(self._store, IN_BAND_PROJECTION)
            self.core.state.in_band = list(in_band.hrefs)
            self._set_aside = unreported_set_aside(self._store)
            await self._persist(self.core.start(self._clock.server_time()))
            task_status.started()
            while True:
                await self._walk_until_ready()
                if self.core.state.state == HALTED:
                    # §2.4: stop all traffic to this server and say why (the log has the reason).
                    self._link.halt(self.core.state.halted_reason or "registration halted")
                    await anyio.sleep_forever()
                try:
                    await self._report_log_set_aside()
                except (HttpFailure, LinkError):
                    pass  # reported at the next poll cycle
                self._tell_subscriptions()
                await self._poll_until_moved()
                if self.core.state.state == HALTED:
                    self._link.halt(self.core.state.halted_reason or "registration halted")
                    await anyio.sleep_forever()

    # -- the walk -----------------------------------------------------------------------------------

    async def _walk_until_ready(self) -> None:
        core = self.core
        while core.state.state not in (READY, HALTED):
            now = self._clock.server_time()
            step = core.next_request(now)
            if step is None:
                deadline = core.next_deadline()
                if deadline is None:
                    raise RuntimeError(f"registration walk stuck at {core.state.state!r}")
                await self._clock.sleep_until_server_time(deadline)
                continue
            try:
                events = await self._perform(step)
            except (HttpFailure, LinkError) as failure:
                status = _status_of(failure)
                events = core.step_failed(step, status, self._clock.server_time(), self._draw)
                self._note_retry_after(failure)
            await self._persist(events + self._schedule_follows(events, self._clock.server_time()))
            await self._honour_retry_after()

    async def _perform(self, step: RegistrationStep) -> list[Event]:
        match step:
            case RegistrationStep.DEVICE_CAPABILITY:
                return await self._device_capability()
            case RegistrationStep.TIME:
                return await self._time()
            case RegistrationStep.END_DEVICE:
                return await self._end_device()
            case RegistrationStep.REGISTRATION:
                return await self._registration()
            case RegistrationStep.CONNECTION_POINT:
                return await self._connection_point()
            case RegistrationStep.PROGRAMS:
                return await self._programs()
            case RegistrationStep.DER:
                return await self._der()
            case RegistrationStep.MIRROR:
                return await self._mirror()
        raise AssertionError(step)

    async def _device_capability(self) -> list[Event]:
        self._found = _Discovered()
        if not self._discovery_done:
            # Once a run: a re-walk (301/404) keeps the DeviceCapability discovery chose.
            self._dcap_path, dcap = await discover_device_capability(
                self._link, self._walk.dcap_path
            )
            self._discovery_done = True
        else:
            dcap = await self._link.get(self._dcap_path, r.DeviceCapability)
        self._found.dcap = dcap
        now = self._clock.server_time()
        # Read again at its own pollRate (§4 rule 15): links it gives may change.
        key = f"dcap:{self._dcap_path}"
        known = key in self.polls.state.polls
        events = self.polls.rate_seen(key, self._poll_s(dcap.pollRate), now)
        return (
            events
            + self._read_counts_as_poll(key, now, known=known)
            + self.core.step_done(RegistrationStep.DEVICE_CAPABILITY, now, dcap.href)
        )

    async def _time(self) -> list[Event]:
        dcap = self._found.dcap
        assert dcap is not None
        if dcap.TimeLink is None:
            raise HttpFailure("GET", self._dcap_path, 404, why="DeviceCapability has no TimeLink")
        before = self._clock.server_time()
        time = await self._link.get(dcap.TimeLink.href, r.Time)
        after = self._clock.server_time()
        # The server read its clock somewhere during the exchange: take the midpoint as ours.
        events = self.core.time_learned(time.currentTime, (before + after) / 2, after)
        # Time is read again at its own pollRate: a server clock that steps is followed (§2.2).
        key = f"tm:{dcap.TimeLink.href}"
        known = key in self.polls.state.polls
        events += self.polls.rate_seen(key, self._poll_s(time.pollRate), after)
        return events + self._read_counts_as_poll(key, after, known=known)

    async def _end_device(self) -> list[Event]:
        dcap = self._found.dcap
        assert dcap is not None
        if dcap.EndDeviceListLink is None:
            raise HttpFailure(
                "GET", self._dcap_path, 404, why="DeviceCapability has no EndDeviceListLink"
            )
        list_href = dcap.EndDeviceListLink.href
        device_list, devices = await self._link.get_list(list_href, r.EndDeviceList, "EndDevice")
        mine = next((d for d in devices if self._is_me(d)), None)
        href = mine.href if mine is not None else None
        if mine is None:
            if not self._walk.register_in_band:
                raise HttpFailure(
                    "GET",
                    list_href,
                    404,
                    why="our EndDevice is not registered and in-band registration is off",
                )
            href = await self._link.post(
                list_href,
                r.EndDevice(
                    deviceCategory=HexBinary32(self._identity.device_category),
                    lFDI=HexBinary160(int(self._identity.lfdi, 16)),
                    sFDI=self._identity.sfdi,
                    changedTime=int(self._clock.server_time()),
                ),
            )
            if href is None:
                raise HttpFailure(
                    "POST", list_href, 201, why="EndDevice created without a Location"
                )
            registered = self.core.end_device_registered(href, self._clock.server_time())
        else:
            registered = []
        assert href is not None
        edev = await self._link.get(href, r.EndDevice)
        self._found.edev, self._found.edev_href = edev, href
        self._note_subscribable(f"edev:{href}", href, edev.subscribable, _RANK_EDEV, fresh=True)
        now = self._clock.server_time()
        # Our EndDevice is read again at its list's pollRate: its postRate may change (§2.8).
        key = f"edev:{href}"
        known = key in self.polls.state.polls
        rate = self.polls.rate_seen(key, self._poll_s(device_list.pollRate), now)
        return (
            registered
            + rate
            + self._read_counts_as_poll(key, now, known=known)
            + self.core.step_done(RegistrationStep.END_DEVICE, now, href)
        )

    def _read_counts_as_poll(self, resource: str, now: float, *, known: bool) -> list[Event]:
        """The walk read a resource that also has its own poll (after a restart or a re-walk): that
        read is its poll, so the next one comes a pollRate later, not when the old schedule said
        (§4 rule 15: never more often than pollRate)."""
        if not known:
            return []  # first sight: its rate was just seen, the next poll is one rate away
        event = Polled(resource=resource, at_s=now)
        evolve_poll(self.polls.state, event)
        return [event]

    def _is_me(self, device: r.EndDevice) -> bool:
        # Servers may drop leading zeros in hex they echo: compare numerically (PROTOCOL.md §2.3).
        if device.lFDI is not None and int(device.lFDI) == int(self._identity.lfdi, 16):
            return True
        return device.sFDI == self._identity.sfdi and device.lFDI is None

    async def _registration(self) -> list[Event]:
        edev = self._found.edev
        assert edev is not None
        if edev.RegistrationLink is None:
            # §2.4: nothing to check; not a moved link (re-walking would never end)
            return self.core.registration_link_missing(self._clock.server_time())
        href = edev.RegistrationLink.href
        registration = await self._link.get(href, r.Registration)
        now = self._clock.server_time()
        events = self.core.registration_pin(registration.pIN, now, href)
        if self.core.state.state == HALTED:
            return events
        # Read again at its pollRate while running: a utility may change the PIN (§2.4).
        key = f"rg:{href}"
        known = key in self.polls.state.polls
        rate = self.polls.rate_seen(key, self._poll_s(registration.pollRate), now)
        return rate + self._read_counts_as_poll(key, now, known=known) + events

    async def _connection_point(self) -> list[Event]:
        edev = self._found.edev
        assert edev is not None and self._walk.nmi is not None
        link = edev.ConnectionPointLink
        if link is None:
            # §2.5: PUT when configured *and* offered; a server without ConnectionPoint resources
            # is not a moved link (re-discovering would loop forever).
            return self.core.step_done(RegistrationStep.CONNECTION_POINT, self._clock.server_time())
        await self._link.put(link.href, r.ConnectionPointType(connectionPointId=self._walk.nmi))
        return self.core.step_done(
            RegistrationStep.CONNECTION_POINT, self._clock.server_time(), link.href
        )

    async def _programs(self) -> list[Event]:
        edev = self._found.edev
        assert edev is not None
        events: list[Event] = []
        if edev.FunctionSetAssignmentsListLink is not None:
            events += await self._poll_fsa_list(
                edev.FunctionSetAssignmentsListLink.href, first=True
            )
        return events + self.core.step_done(RegistrationStep.PROGRAMS, self._clock.server_time())

    async def _der(self) -> list[Event]:
        edev = self._found.edev
        assert edev is not None
        events: list[Event] = []
        if edev.DERListLink is not None:
            key = f"der:{edev.DERListLink.href}"
            known = key in self.polls.state.polls
            self._status_told = None  # each walk tells the DER status reporter again
            self._members_told = {}
            events += await self._read_der_list(edev.DERListLink.href)
            events += self._read_counts_as_poll(key, self._clock.server_time(), known=known)
            if self._found.der_hrefs is not None or self._found.der_members:
                await self._put_der_info(full=True)
        return events + self.core.step_done(RegistrationStep.DER, self._clock.server_time())

    async def _read_der_list(self, href: str) -> list[Event]:
        """GET the DERList and our DER (§2.7); the list is read again at its pollRate (§4 rule 15).
        A DER whose links changed gets the full DER information set at this cycle."""
        der_list, ders = await self._link.get_list(href, r.DERList, "DER")
        events = self.polls.rate_seen(
            f"der:{href}", self._poll_s(der_list.pollRate), self._clock.server_time()
        )
        if self._walk.ders:
            return events + await self._match_der_list(href, ders)
        if ders:
            der = ders[0]
            if der.DERCapabilityLink is None and der.href:
                der = await self._link.get(der.href, r.DER)
            if self._found.der_hrefs is not None and der != self._found.der_hrefs:
                self._der_info_owed = True
            self._found.der_hrefs = der
            status = None if der.DERStatusLink is None else der.DERStatusLink.href
            if status is not None and status != self._status_told and self._der_status_target:
                # Told once a walk, and again when a re-read finds it moved: each telling makes
                # the reporter PUT the whole status, which a re-read of the same list must not.
                self._der_status_target.put(DerStatusTarget(href=status))
                self._status_told = status
        return events

    def _put_mirror_targets(self, targets: MirrorTargets) -> None:
        assert self._mirror_targets is not None
        self._mirror_targets.put(targets)
        for mailbox in self._member_mirror_targets:
            mailbox.put(targets)

    async def _match_der_list(self, href: str, ders: Sequence[r.DER]) -> list[Event]:
        """A site of several DER (issue 19 point 2): each configured DER is reported as the
        listed DER ``statemachines.der_matching`` gives it (a named href, else list order). A list
        with fewer or more DER than configured is a finding, recorded when the match changes
        (``der.list_matched.v1``), never a halt: the DER that matched are reported. A DER whose
        links changed gets the full DER information set at this cycle (§2.7)."""
        listed = {d.href: d for d in ders if d.href}
        matches, unmatched_ders, unmatched_hrefs = match_ders(self._walk.ders, list(listed))
        members: dict[str, r.DER] = {}
        for match in matches:
            der = listed[match.href]
            if der.DERCapabilityLink is None:
                der = await self._link.get(match.href, r.DER)
            members[match.der] = der
        if self._found.der_members and members != self._found.der_members:
            self._der_info_owed = True
        self._found.der_members = members
        for name, der in members.items():
            status = None if der.DERStatusLink is None else der.DERStatusLink.href
            mailbox = self._member_status_targets.get(name)
            if (
                status is not None
                and mailbox is not None
                and self._members_told.get(name) != status
            ):
                mailbox.put(DerStatusTarget(href=status))
                self._members_told[name] = status
        matched = DerListMatched(
            at_s=self._clock.server_time(),
            list_href=href,
            matches=matches,
            unmatched_ders=unmatched_ders,
            unmatched_hrefs=unmatched_hrefs,
            finding=mismatch_finding(self._walk.ders, unmatched_ders, unmatched_hrefs, len(listed)),
        )
        last = self._last_match
        if last is not None and msgspec.structs.replace(matched, at_s=last.at_s) == last:
            return []
        self._last_match = matched
        if matched.finding:
            logger.warning("DERList %s: %s", href, matched.finding)
        return [matched]

    async def _mirror(self) -> list[Event]:
        dcap, edev = self._found.dcap, self._found.edev
        assert dcap is not None and edev is not None
        events: list[Event] = []
        if dcap.MirrorUsagePointListLink is not None and self._mirror_targets is not None:
            href = dcap.MirrorUsagePointListLink.href
            rate = edev.postRate or self._walk.default_post_s  # EndDevice.postRate wins (§2.8)
            self._targets = MirrorTargets(
                mup_list=href, post_rate_s=bounded_post_rate(rate), post_rate_sent_s=_sent(rate)
            )
            self._put_mirror_targets(self._targets)
            # Read again at its pollRate (§4 rule 15): a list that lost ours is told to the mirror.
            key = f"mup:{href}"
            known = key in self.polls.state.polls
            events += await self._read_mirror_list(href)
            events += self._read_counts_as_poll(key, self._clock.server_time(), known=known)
        return events + self.core.step_done(RegistrationStep.MIRROR, self._clock.server_time())

    async def _read_mirror_list(self, href: str) -> list[Event]:
        """GET the MirrorUsagePointList (§2.8, §4 rule 15) and tell the mirror actor (through its
        MirrorTargets) which of ours it lists: one the mirror created and the server no longer
        lists was lost, and is created again before the next post.

        A server that refuses to list them (any HTTP failure, a garbled list) is not a moved link:
        nothing is claimed about our MirrorUsagePoints and the list is tried again a pollRate later
        (the mirror still learns a lost one from a refused reading). A network failure is raised.

        Only the first page is read. A list longer than a page is an aggregator's (issue 19): every
        MirrorUsagePoint of every site it registered, two a site. Each site paging through it at
        every pollRate made the fleet's reads grow with the square of its sites (20 pages of
        ~35 kB per site per read at 1,000 sites, 41 % of the registration actor's CPU); from
        such a list nothing is claimed either, as from a refused one, and the mirror learns a lost
        MirrorUsagePoint from the 404 of its next reading (it creates it again and posts once
        more, in the same post instant)."""
        key = f"mup:{href}"
        asked_s = self._clock.server_time()
        try:
            mup_list, mups = await self._link.get_list(
                href, r.MirrorUsagePointList, "MirrorUsagePoint", pages=1
            )
        except (HttpFailure, SchemaViolation) as failure:
            self._note_retry_after(failure)
            return self.polls.rate_seen(key, self._poll_s(None), self._clock.server_time())
        events = self.polls.rate_seen(
            key, self._poll_s(mup_list.pollRate), self._clock.server_time()
        )
        if mup_list.all is not None and int(mup_list.all) > len(mups):
            return events  # longer than a page: no claim about which of ours it lists
        lfdi = int(self._identity.lfdi, 16)
        ours = frozenset(
            m.href
            for m in mups
            if m.href is not None and (m.deviceLFDI is None or int(m.deviceLFDI) == lfdi)
        )
        targets = self._targets
        if targets is not None and self._mirror_targets is not None:
            self._targets = msgspec.structs.replace(
                targets, listed=tuple(sorted(ours)), listed_at_s=asked_s
            )
            self._put_mirror_targets(self._targets)
        return events

    # -- DER information (§2.7) --------------------------------------------------------------------

    def _set_grad_w(self) -> int:
        for program in sorted(
            (p for ps in self._found.programs.values() for p in ps),
            key=lambda p: (p.primacy, p.program_id),
        ):
            default = self._found.defaults.get(program.program_id)
            if default is not None and default.set_grad_w is not None:
                return default.set_grad_w
        return 0  # sep.xsd: 0 = no ramp limit

    async def _put_der_info(self, *, full: bool, cycle: bool = True) -> None:
        """PUT what the utility should know about the DER (§2.7). A refused or failed PUT is
        information not delivered, never a reason to halt or to re-walk: the whole set is owed to
        the next DER cycle (``cycle``: this wake-up polled the DERList, §4 rule 15) and goes out
        then, once, however many other polls fall due meanwhile — also while offline. A network
        failure is raised (the caller's loop decides what offline means)."""
        snapshot = self._der_reported.peek()
        documents = self._der_documents(snapshot)
        if not documents:
            return
        if self._der_info_owed and not (full or cycle):
            return
        full = full or self._der_info_owed
        self._der_info_owed = False
        try:
            for der, own in documents:
                await self._put_der_documents(der, own, full=full)
        except LinkError:
            self._der_info_owed = True
            raise

    def _der_documents(self, snapshot: DerSnapshot | None) -> list[tuple[r.DER, DerSnapshot]]:
        """Each server DER and what its DER reported: the site's one DER, or (a site of several)
        each matched DER with its own nameplate and reading (the modes are the site's: the site's
        limits reach every DER through its share, ``actors.drivers.composite``). A DER whose
        nameplate was never read has nothing to report yet."""
        if snapshot is None:
            return []
        if not self._walk.ders:
            der = self._found.der_hrefs
            return [] if der is None else [(der, snapshot)]
        own = {m.der: m for m in snapshot.members}
        if not own and len(self._walk.ders) == 1:
            # One DER listed as ``[[ders]]`` and driven by a plain driver: the site is that DER.
            own = {
                self._walk.ders[0][0]: MemberSnapshot(
                    der=self._walk.ders[0][0],
                    nameplate=snapshot.nameplate,
                    telemetry=snapshot.telemetry,
                )
            }
        documents: list[tuple[r.DER, DerSnapshot]] = []
        for name, der in self._found.der_members.items():
            member = own.get(name)
            if member is None or member.nameplate is None:
                continue
            documents.append(
                (
                    der,
                    DerSnapshot(
                        nameplate=member.nameplate,
                        modes=snapshot.modes,
                        telemetry=member.telemetry,
                        role=member.role,
                    ),
                )
            )
        return documents

    async def _put_der_documents(self, der: r.DER, snapshot: DerSnapshot, *, full: bool) -> None:
        now = self._clock.server_time()
        if full:
            if der.DERCapabilityLink is not None:
                capability = der_info.capability(snapshot)
                await self._put_info(
                    der.DERCapabilityLink.href,
                    capability_to_wire(capability, csipaus_ns=self._link.csipaus_ns),
                )
        if der.DERSettingsLink is not None:
            # On change too (§4 rule 10: a default's setGradW is reflected in DERSettings).
            settings = der_info.settings(snapshot, now=now, set_grad_w=self._set_grad_w())
            settings_key = msgspec.structs.replace(settings, updated_s=0)
            href = der.DERSettingsLink.href
            if (full or settings_key != self._last_der_settings.get(href)) and await self._put_info(
                href,
                settings_to_wire(settings, csipaus_ns=self._link.csipaus_ns),
            ):
                self._last_der_settings[href] = settings_key
        if full:
            if der.DERAvailabilityLink is not None:
                await self._put_info(
                    der.DERAvailabilityLink.href,
                    availability_to_wire(der_info.availability(snapshot, now=now)),
                )

    async def _post_alarms(self) -> None:
        """PROTOCOL.md §2.9: each alarm the DER raises is POSTed once to our EndDevice's
        LogEventList (profileID 2 = IEEE 2030.5, functionSet 11 = DER); one that clears and is
        raised again is reported again. A refused POST is not retried (4xx); a network failure is
        raised and the alarm is reported at the next cycle."""
        edev, snapshot = self._found.edev, self._der_reported.peek()
        if edev is None or edev.LogEventListLink is None:
            return
        active: tuple[str, ...] = ()
        if snapshot is not None and snapshot.telemetry is not None:
            active = tuple(snapshot.telemetry.alarms)
        log_alarms = (self._log_alarm.peek() if self._log_alarm is not None else None) or 0
        if log_alarms > self._log_alarms_reported:
            # Issue 16 point 5: a log that ran short of space or full is reported beside the DER's
            # alarms, once per time it happened.
            self._alarms_reported.discard(LOG_FULL_ALARM)
            active += (LOG_FULL_ALARM,)
        for alarm in active:
            if alarm in self._alarms_reported:
                continue
            event = r.LogEvent(
                createdDateTime=int(self._clock.server_time()),
                functionSet=_DER_FUNCTION_SET,
                logEventCode=0,
                logEventID=_alarm_id(alarm),
                logEventPEN=self._walk.pen,
                profileID=_PROFILE_IEEE_2030_5,
                details=f"DER alarm raised: {alarm}"[:32],
            )
            try:
                await self._link.post(edev.LogEventListLink.href, event)
            except HttpFailure as failure:
                self._note_retry_after(failure)
                if not 400 <= failure.status < 500 or failure.status == 429:
                    raise  # 5xx/429: reported at the next cycle
            self._alarms_reported.add(alarm)
        self._alarms_reported &= set(active)
        self._log_alarms_reported = log_alarms

    async def _report_log_set_aside(self) -> None:
        """Issue 16 point 6 with PROTOCOL.md §2.9: the previous log did not verify at start and was
        set aside (the first record of this log says so). That alarm is POSTed once to our
        EndDevice's LogEventList (profileID 2, functionSet 0: not of one function set), its
        ``details`` naming the reason, and the report is recorded so no restart repeats it. A
        refusal (4xx) is recorded, not retried; a network failure or 5xx/429 is raised and the
        alarm is reported at the next cycle."""
        if self._set_aside is None:
            return
        edev = self._found.edev
        if edev is None or edev.LogEventListLink is None:
            return
        seq, aside = self._set_aside
        href = edev.LogEventListLink.href
        details = set_aside_details(aside.finding)
        event = r.LogEvent(
            createdDateTime=int(self._clock.server_time()),
            functionSet=_GENERAL_FUNCTION_SET,
            logEventCode=0,
            logEventID=_alarm_id(_LOG_SET_ASIDE),
            logEventPEN=self._walk.pen,
            profileID=_PROFILE_IEEE_2030_5,
            details=details,
        )
        refused: int | None = None
        try:
            await self._link.post(href, event)
        except HttpFailure as failure:
            self._note_retry_after(failure)
            if not 400 <= failure.status < 500 or failure.status == 429:
                raise
            refused = failure.status
        reading = self._clock.read()
        report = LogSetAsideReported(
            set_aside_seq=seq,
            href=href,
            details=details,
            log_event_id=event.logEventID,
            refused_status=refused,
        )
        await self._log.append(
            [
                Append(
                    stream=RUNTIME_STREAM,
                    events=(report,),
                    server_time=reading.server_time,
                    monotonic=reading.monotonic,
                )
            ]
        )
        self._set_aside = None

    async def _put_info(self, href: str, resource: msgspec.Struct) -> bool:
        try:
            await self._link.put(href, resource)
        except HttpFailure as failure:
            self._note_retry_after(failure)
            self._der_info_owed = True  # all of it again at the next cycle
            self._der_info_failures += 1
            return False
        return True

    # -- polling (§4 rule 15) -----------------------------------------------------------------------

    async def _poll_until_moved(self) -> None:
        """Poll every list when due; return when a 301/404 says the links moved (walk again)."""
        try:
            await self._poll_until_moved_loop()
        finally:
            self._prompt_cause = None  # the walk that may follow reads for no notification

    async def _poll_until_moved_loop(self) -> None:
        while True:
            await self._take_prompts()
            now = self._clock.server_time()
            due = self.polls.due_polls(now)
            if not due and self._der_info_now:
                # Once per wake-up: a failed PUT is owed to the next poll cycle, never retried
                # here (that would hammer a server that refuses it).
                self._der_info_now = False
                try:
                    await self._put_der_info(full=True)
                except LinkError:
                    pass  # offline: owed again at the next cycle
                continue
            if not due:
                # Only the polls are ours: the post schedule in the same fold is the mirror's.
                polls = self.polls.state.polls
                deadline = min((e.next_s for e in polls.values()), default=now + DEFAULT_POLL_S)
                await self._sleep_until_due(deadline)
                continue
            for resource in due:
                self._prompt_cause = self._prompted.pop(resource, None)
                try:
                    events = await self._poll(resource)
                except HttpFailure as failure:
                    self._note_retry_after(failure)
                    if failure.status in (301, 404):
                        await self._persist(
                            self.core.lost_link(failure.status, self._clock.server_time())
                        )
                        return
                    events = []  # 429/5xx: try again at the next cycle, never sooner
                except LinkError:
                    events = []  # offline: the controls actor keeps the schedule (§4 rule 12)
                now = self._clock.server_time()
                # this poll is recorded before a shift, on the clock before the step
                await self._persist(
                    events + self.polls.polled(resource, now) + self._schedule_follows(events, now)
                )
                self._prompt_cause = None
                if self.core.state.state != READY:
                    # the PIN changed under us: run() stops all traffic (§2.4); or links changed:
                    # walk again (§2)
                    return
                self._tell_subscriptions()
                await self._honour_retry_after()
            try:
                # One DER cycle per DERList poll: what is owed goes out there, not after each poll.
                await self._put_der_info(full=False, cycle=any(d.startswith("der:") for d in due))
                await self._post_alarms()
                await self._report_log_set_aside()
            except (HttpFailure, LinkError):
                pass  # status is re-sent at the next cycle

    async def _take_prompts(self) -> None:
        """Issue 19 point 3: the polls notifications made due now, recorded (``PollPrompted``,
        naming the notification's record) before the schedule is read, so a replay of the log
        finds them due exactly as the live actor did."""
        if self._poll_prompts is None or not self._poll_prompts.fresh:
            return
        prompts = self._poll_prompts.take_nowait()
        now = self._clock.server_time()
        events: list[Event] = []
        for prompt in prompts.prompts:
            made_due = self.polls.prompted(
                prompt.poll, prompt.resource, prompt.notification_seq, now
            )
            if made_due:
                self._prompted[prompt.poll] = prompt
            events += made_due
        await self._persist(events)

    def _note_subscribable(
        self, poll: str, href: str, subscribable: int | None, rank: int, *, fresh: bool = False
    ) -> None:
        """What the read of ``poll`` found subscribable (``fresh``: the read of the poll's own
        resource, which starts its set again)."""
        found = self._subscribable.setdefault(poll, {})
        if fresh:
            self._subscribable_before[poll] = dict(found)
            found.clear()
        if is_subscribable(subscribable):
            found[href] = rank

    def _keep_subscribable(self, poll: str, href: str) -> None:
        """``href`` could not be read this cycle: what the last read found of it stands (a list
        failing once is not a reason to unsubscribe from it and subscribe again)."""
        rank = self._subscribable_before.get(poll, {}).get(href)
        if rank is not None:
            self._subscribable.setdefault(poll, {})[href] = rank

    def _tell_subscriptions(self) -> None:
        """The subscribable resources our EndDevice's tree holds now (issue 19 point 3), told to
        the subscription actor when they changed: the EndDevice's own, its FSA list's, and those of
        the program lists our FSAs reference (§4 rule 4: an unreferenced list's are let go)."""
        if self._subscription_targets is None:
            return
        edev, edev_href = self._found.edev, self._found.edev_href
        if edev is None or edev_href is None:
            return
        polls = {f"edev:{edev_href}"}
        if edev.FunctionSetAssignmentsListLink is not None:
            polls.add(f"fsa:{edev.FunctionSetAssignmentsListLink.href}")
        polls |= {f"derp:{href}" for href in self._found.program_lists.values()}
        for stale in set(self._subscribable) - polls:
            del self._subscribable[stale]
        ranked = sorted(
            (rank, href, poll)
            for poll, found in self._subscribable.items()
            for href, rank in found.items()
        )
        told = SubscriptionTargets(
            list_href=None if edev.SubscriptionListLink is None else edev.SubscriptionListLink.href,
            targets=tuple(SubscriptionTarget(resource=h, poll=p) for _, h, p in ranked),
        )
        if told != self._subscriptions_told:
            self._subscriptions_told = told
            self._subscription_targets.put(told)

    def _schedule_follows(self, events: Sequence[Event], now: float) -> list[Event]:
        """§2.2 with §4 rule 15: a Time read (a poll, or the walk again after links moved) that
        found the utility's clock stepped moves the poll schedule with it — but not in a process's
        first walk, whose clock starts on the device's own and whose replayed schedule is already
        on the server's."""
        step_s = sum(e.offset_s for e in events if isinstance(e, TimeOffsetLearned))
        if not self._clock.synced or abs(step_s) <= TIME_RESYNC_S:
            return []
        return self.polls.shifted(step_s, now)

    async def _poll(self, resource: str) -> list[Event]:
        kind, _, href = resource.partition(":")
        if kind == "fsa":
            return await self._poll_fsa_list(href, first=False)
        if kind == "derp":
            if href not in self._found.program_lists.values():
                # Our FSAs no longer reference this list (§4 rule 4): reading it would put its
                # programs back among ours. Its schedule stays (the fold has no removal); no GET.
                return []
            return await self._poll_program_list(href)
        if kind == "edev":
            return await self._poll_end_device(href)
        if kind == "dcap":
            return await self._poll_device_capability(href)
        if kind == "der":
            edev = self._found.edev
            if edev is None or edev.DERListLink is None or edev.DERListLink.href != href:
                return []  # no longer our EndDevice's DERList: its schedule stays, no GET
            return await self._read_der_list(href)
        if kind == "mup":
            dcap = self._found.dcap
            link = None if dcap is None else dcap.MirrorUsagePointListLink
            if link is None or link.href != href:
                return []  # no longer the DeviceCapability's MirrorUsagePointList: no GET
            return await self._read_mirror_list(href)
        if kind == "tm":
            before = self._clock.server_time()
            time = await self._link.get(href, r.Time)
            after = self._clock.server_time()
            rate = self.polls.rate_seen(resource, self._poll_s(time.pollRate), after)
            return rate + self.core.time_resynced(time.currentTime, (before + after) / 2, after)
        if kind == "rg":
            registration = await self._link.get(href, r.Registration)
            now = self._clock.server_time()
            # Registration carries its own pollRate: a change applies from the next cycle (§4
            # rule 15; the swarm found it ignored, so /rg stayed on the walk's rate for good).
            rate = self.polls.rate_seen(resource, self._poll_s(registration.pollRate), now)
            return rate + self.core.pin_seen(registration.pIN, now, href)
        raise ValueError(f"unknown poll resource {resource!r}")

    async def _poll_device_capability(self, href: str) -> list[Event]:
        """§4 rule 15: DeviceCapability at its own pollRate. Links the walk followed that changed
        (Time, EndDeviceList, MirrorUsagePointList) make the walk start again (§2: follow hrefs)."""
        dcap = await self._link.get(href, r.DeviceCapability)
        now = self._clock.server_time()
        events = self.polls.rate_seen(f"dcap:{href}", self._poll_s(dcap.pollRate), now)
        before = self._found.dcap
        self._found.dcap = dcap
        if before is not None and _walked_links(before) != _walked_links(dcap):
            events += self.core.links_changed(f"dcap:{href}", now)
        return events

    async def _poll_end_device(self, href: str) -> list[Event]:
        """Our EndDevice again: a changed postRate goes to the mirror actor (§2.8).

        Its pollRate is the EndDeviceList's (an EndDevice carries none), so the list's first page is
        read too: a rate the server changed applies from the next cycle (§4 rule 15); reading only
        the EndDevice kept the rate of the walk for good and over-polled it."""
        events: list[Event] = []
        dcap = self._found.dcap
        if dcap is not None and dcap.EndDeviceListLink is not None:
            list_href = dcap.EndDeviceListLink.href
            separator = "&" if "?" in list_href else "?"
            device_list = await self._link.get(f"{list_href}{separator}s=0&l=1", r.EndDeviceList)
            if device_list.pollRate:
                events += self.polls.rate_seen(
                    f"edev:{href}", device_list.pollRate, self._clock.server_time()
                )
        edev = await self._link.get(href, r.EndDevice)
        if href == self._found.edev_href:
            self._found.edev = edev
            self._note_subscribable(f"edev:{href}", href, edev.subscribable, _RANK_EDEV, fresh=True)
        targets = self._targets
        if targets is not None and self._mirror_targets is not None:
            rate = edev.postRate or self._walk.default_post_s
            if bounded_post_rate(rate) != targets.post_rate_s:
                self._targets = msgspec.structs.replace(
                    targets, post_rate_s=bounded_post_rate(rate), post_rate_sent_s=_sent(rate)
                )
                self._put_mirror_targets(self._targets)
        return events

    async def _poll_fsa_list(self, href: str, *, first: bool) -> list[Event]:
        now = self._clock.server_time()
        fsa_list, fsas = await self._link.get_list(
            href, r.FunctionSetAssignmentsList, "FunctionSetAssignments"
        )
        key = f"fsa:{href}"
        known = key in self.polls.state.polls
        events = self.polls.rate_seen(key, self._poll_s(fsa_list.pollRate), now)
        self._note_subscribable(key, href, fsa_list.subscribable, _RANK_FSA, fresh=True)
        if first:
            events += self._read_counts_as_poll(key, now, known=known)
        lists = {}
        for fsa in fsas:
            if fsa.DERProgramListLink is not None:
                lists[fsa.href or fsa.DERProgramListLink.href] = fsa.DERProgramListLink.href
        if self._pricing_targets is not None:
            # Pricing (IEEE 2030.5-2018 Pricing): the pricing actor walks the tariffs itself, told
            # only of a change (none offered at first is no change: nothing to wake it for).
            tariffs = TariffLinks(
                hrefs=tuple(
                    sorted({f.TariffProfileListLink.href for f in fsas if f.TariffProfileListLink})
                )
            )
            if tariffs != (self._tariffs_told or TariffLinks(hrefs=())):
                self._tariffs_told = tariffs
                self._pricing_targets.put(tariffs)
        for gone in set(self._found.programs) - set(lists.values()):
            # §4 rule 4: a program list no longer referenced takes its programs (and events) with it.
            del self._found.programs[gone]
        self._found.program_lists = lists
        fetched: list[tuple[str, list[r.DERProgram]]] = []
        for list_href in sorted(set(lists.values())):
            key = f"derp:{list_href}"
            entry = self.polls.state.polls.get(key)
            if entry is None:
                # First sight of this list: fetch it now; its own polls follow at its pollRate.
                events += await self._read_program_list(list_href, fetched)
            elif entry.next_s <= now:
                events += await self._read_program_list(list_href, fetched)
                events += self.polls.polled(key, now)
            # else: fetched recently (before a restart or a re-walk); its own poll comes when due,
            # and the controls actor still holds what it had (folded from the log).
        # The programs first: the controls actor ignores a default or controls of a program it
        # has not been told about (they would only be seen again one pollRate later).
        await self._announce_programs()
        for list_href, wire_programs in fetched:
            await self._read_program_contents(list_href, wire_programs)
        return events

    async def _poll_program_list(self, href: str) -> list[Event]:
        fetched: list[tuple[str, list[r.DERProgram]]] = []
        events = await self._read_program_list(href, fetched)
        await self._announce_programs()
        for list_href, wire_programs in fetched:
            await self._read_program_contents(list_href, wire_programs)
        return events

    async def _read_program_list(
        self, href: str, fetched: list[tuple[str, list[r.DERProgram]]]
    ) -> list[Event]:
        """GET one DERProgramList; its programs' defaults and controls are read afterwards, once
        the programs have been announced (:meth:`_read_program_contents`)."""
        now = self._clock.server_time()
        program_list, wire_programs = await self._link.get_list(
            href, r.DERProgramList, "DERProgram"
        )
        events = self.polls.rate_seen(f"derp:{href}", self._poll_s(program_list.pollRate), now)
        self._note_subscribable(
            f"derp:{href}", href, program_list.subscribable, _RANK_PROGRAMS, fresh=True
        )
        self._found.programs[href] = tuple(program_from_wire(p) for p in wire_programs)
        fetched.append((href, wire_programs))
        return events

    async def _read_program_contents(self, href: str, wire_programs: list[r.DERProgram]) -> None:
        """Each program's DefaultDERControl and DERControlList, handed to the controls actor.

        A failure of one program's resource (a 404 or 5xx of its DERControlList, a garbled default)
        skips what could not be read *for that program, this cycle*: nothing is claimed about it
        (§4 rule 4: a vanished event is not cancelled), the other programs are still read, and it
        is read again at the list's next poll. Only a failure of the list itself means moved
        links (§2: 301/404 re-discover); a network failure is raised (offline)."""
        programs = self._found.programs.get(href, ())
        for wire, program in zip(wire_programs, programs, strict=True):
            if wire.DefaultDERControlLink is None:
                default_seen = True
                default: DefaultControl | None = None
            else:
                default_seen, default = await self._read_default(
                    wire.DefaultDERControlLink.href, program.program_id, f"derp:{href}"
                )
            if default_seen:
                self._found.defaults[program.program_id] = default
                await self._to_controls.send(
                    DefaultSeen(program_id=program.program_id, default=default)
                )
            controls: tuple[Control, ...] = ()
            if wire.DERControlListLink is not None:
                try:
                    control_list, wire_controls = await self._link.get_list(
                        wire.DERControlListLink.href, r.DERControlList, "DERControl"
                    )
                    self._note_subscribable(
                        f"derp:{href}",
                        wire.DERControlListLink.href,
                        control_list.subscribable,
                        _RANK_CONTROLS,
                    )
                    controls, skipped = await _controls_in_steps(wire_controls, program.program_id)
                    for reason in skipped:
                        logger.warning("server fault: %s (left out; the rest go on)", reason)
                except (HttpFailure, SchemaViolation, LinkBackingOff):
                    # LinkBackingOff: the link holds this list back after failures (issue 15).
                    self._unread += 1
                    self._keep_subscribable(f"derp:{href}", wire.DERControlListLink.href)
                    continue
            await self._to_controls.send(
                ControlsSeen(
                    program_id=program.program_id,
                    controls=controls,
                    prompted_by=self._prompted_by(href, wire),
                )
            )

    def _prompted_by(
        self, program_list: str, program: r.DERProgram
    ) -> tuple[int, float] | None:
        """The notification (record seq, time) the controls of ``program`` are credited to: only
        one that named its DERControlList, the program itself or the DERProgramList
        ``program_list`` it was read from (a change of a program's controls changes each of
        these), never one about another program's resources (issue 19 point 3; review finding
        9)."""
        cause = self._prompt_cause
        if cause is None:
            return None
        covering = {program_list, program.href}
        if program.DERControlListLink is not None:
            covering.add(program.DERControlListLink.href)
        if cause.resource not in covering:
            return None
        return (cause.notification_seq, cause.at_s)

    async def _read_default(
        self, href: str, program_id: str, poll: str
    ) -> tuple[bool, DefaultControl | None]:
        """(read, default): a 404 reads as "no default"; other failures as not read this cycle."""
        try:
            wire = await self._link.get(href, r.DefaultDERControl)
            self._note_subscribable(poll, href, wire.subscribable, _RANK_DEFAULT)
            return True, default_control_from_wire(wire, program_id)
        except HttpFailure as failure:
            if failure.status == 404 and not isinstance(failure, BadDocument):
                return True, None
            self._unread += 1
            self._keep_subscribable(poll, href)
            return False, None
        except (SchemaViolation, LinkBackingOff):
            self._unread += 1
            self._keep_subscribable(poll, href)
            return False, None

    async def _announce_programs(self) -> None:
        """The programs of every list our FSAs reference; only once every list has been read, so a
        partial view never makes the controls actor drop a program (§4 rule 4)."""
        if not set(self._found.program_lists.values()) <= set(self._found.programs):
            return
        every = {p.program_id: p for ps in self._found.programs.values() for p in ps}
        await self._to_controls.send(ProgramsSeen(programs=tuple(every[k] for k in sorted(every))))


#: The order subscriptions are asked for (at most ``max_subscriptions`` are held).
_RANK_EDEV: Final = 0
_RANK_FSA: Final = 1
_RANK_PROGRAMS: Final = 2
_RANK_DEFAULT: Final = 3
_RANK_CONTROLS: Final = 4


async def _wake_on(
    box: Latest[ControlsNews] | Latest[PollPrompts], scope: anyio.CancelScope
) -> None:
    await box.wait()
    scope.cancel()


async def _controls_in_steps(
    wire: Sequence[r.DERControl], program_id: str
) -> tuple[tuple[Control, ...], tuple[str, ...]]:
    """:func:`controls_from_wire` in steps of :data:`statemachines.controls.RECEIPT_STEP` controls,
    letting the loop go between them (issue 15 point 3: a list of thousands of controls never holds
    the event loop; ~15 µs a control here, ~75 ms for the 5,000 the link lets a list have)."""
    usable: list[Control] = []
    skipped: list[str] = []
    for begin in range(0, len(wire), RECEIPT_STEP):
        if begin:
            await anyio.lowlevel.checkpoint()
        part, why = controls_from_wire(wire[begin : begin + RECEIPT_STEP], program_id)
        usable += part
        skipped += why
    return tuple(usable), tuple(skipped)


#: LogEvent.profileID 2: IEEE 2030.5; LogEvent.functionSet 11: Distributed Energy Resources.
_PROFILE_IEEE_2030_5: Final = 2
_DER_FUNCTION_SET: Final = 11


#: LogEvent.functionSet 0: not specific to a function set (the gateway's own log).
_GENERAL_FUNCTION_SET: Final = 0
_LOG_SET_ASIDE: Final = "log set aside"


def unreported_set_aside(store: EventStore) -> tuple[int, PreviousLogSetAside] | None:
    """The record of this log saying the previous one was set aside, unless its alarm was already
    reported (:class:`LogSetAsideReported`)."""
    aside: tuple[int, PreviousLogSetAside] | None = None
    reported: set[int] = set()
    for record in store.read(types=(tag_of(PreviousLogSetAside), tag_of(LogSetAsideReported))):
        if isinstance(record.event, PreviousLogSetAside):
            aside = (record.seq, record.event)
        elif isinstance(record.event, LogSetAsideReported):
            reported.add(record.event.set_aside_seq)
    return None if aside is None or aside[0] in reported else aside


def set_aside_details(finding: str) -> str:
    """LogEvent.details (at most 32 characters): that the log was set aside, and why in a word."""
    if "signed checkpoint" in finding:
        why = "bad signature"
    elif "hash chain" in finding:
        why = "chain broken"
    else:
        why = "did not verify"
    return f"{_LOG_SET_ASIDE}: {why}"[:32]


def _alarm_id(alarm: str) -> int:
    """A stable 16-bit logEventID per alarm name (the same alarm, the same ID, across restarts)."""
    return int.from_bytes(hashlib.sha256(alarm.encode()).digest()[:2], "big")


def _walked_links(dcap: r.DeviceCapability) -> tuple[str | None, ...]:
    """The DeviceCapability links the walk follows (§2 steps 2, 3 and 8)."""
    return tuple(
        None if link is None else link.href
        for link in (dcap.TimeLink, dcap.EndDeviceListLink, dcap.MirrorUsagePointListLink)
    )


def _status_of(failure: Exception) -> int | None:
    if isinstance(failure, BadDocument):
        return None  # a garbled answer: retry after a back-off, as for a network failure
    if isinstance(failure, HttpFailure):
        return failure.status
    return None

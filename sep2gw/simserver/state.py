"""The simulated utility head-end as a pure state model: requests in, replies out, time an argument.

:class:`UtilityState` holds what a 2030.5 server holds for its devices — DeviceCapability, Time,
EndDevices (in-band registration), Registration, FunctionSetAssignments, DERPrograms with their
defaults, controls and curves, DER information the devices PUT, CSIP-AUS ConnectionPoints,
Responses, MirrorUsagePoints and their readings, LogEvents — and answers
:meth:`UtilityState.handle` (method, target, body, the client certificate's LFDI, ``now`` in server
epoch seconds) with a :class:`SimReply`. Scenario actions change it through
:meth:`UtilityState.apply`. Nothing here reads a clock, sleeps or touches a socket.

Access (IEEE 2030.5 §6.6 / CSIP §5.2: a device sees its own resources): a client whose certificate
LFDI has no EndDevice may only read DeviceCapability, Time and the (own, hence empty) EndDeviceList
and POST its EndDevice; anything else is 403. ``/edev/{id}/…`` is 403 for every LFDI but the one
that registered ``id``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import assert_never

import msgspec

from sep2gw.simserver.scenario import (
    WORLD_FAULTS,
    Action,
    CancelControl,
    CancelPriceInterval,
    CancelSubscriptions,
    ChangeControl,
    ChangeDefault,
    ClockSkew,
    CreateControl,
    CreatePriceInterval,
    DelayNotifications,
    DeleteControl,
    DuplicateNotifications,
    FailRequests,
    ForgetSubscriptions,
    LoseMirrors,
    LoseNotifications,
    RemoveProgram,
    RestoreProgram,
    Scenario,
    SetPin,
    SetPollRate,
    SetPostRate,
    SlowResponses,
    TlsFail,
)
from transport.http.messages import SEP_XML
from transport.http.router import Match, Router
from transport.identity import sfdi_from_lfdi
from transport.sep2 import resources as r

__all__ = [
    "ControlRecord",
    "DeviceRecord",
    "MirrorRecord",
    "ProgramRecord",
    "SimReply",
    "UtilityState",
    "event_status",
]

from sep2gw.simserver.families.der import DerResources
from sep2gw.simserver.families.discovery import DiscoveryResources
from sep2gw.simserver.families.fleet import FleetResources
from sep2gw.simserver.families.mirrors import MirrorResources
from sep2gw.simserver.families.pricing import (
    INTERVAL_MRID,
    RATE_MRID,
    TARIFF_MRID,
    PriceIntervalRecord,
    PricingResources,
    TariffRecord,
)
from sep2gw.simserver.families.programs import ProgramResources
from sep2gw.simserver.families.subscriptions import SubscriptionResources
from sep2gw.simserver.records import (
    _CONTROL_MRID,
    _INSTALLER_DEVICE_CATEGORY,
    _OPEN_PATHS,
    _PROGRAM_MRID,
    ControlRecord,
    DeviceRecord,
    MirrorRecord,
    ProgramRecord,
    SimReply,
    _Ctx,
    _Failure,
    _NotFound,
    control_base,
    event_status,
)

_Fn = Callable[["UtilityState", _Ctx], SimReply]


class UtilityState(
    DiscoveryResources,
    ProgramResources,
    DerResources,
    MirrorResources,
    PricingResources,
    SubscriptionResources,
    FleetResources,
):
    """One utility head-end, driven by a :class:`Scenario`. ``start`` is the server epoch second
    at which the scenario's offsets count from."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        start: float,
        aggregators: Iterable[int] = (),
        site_lfdis: Mapping[str, int] | None = None,
    ) -> None:
        """``aggregators``: certificate LFDIs allowed to register and act for other EndDevices
        (beside the scenario's ``server.aggregators``); ``site_lfdis``: the LFDI of each fleet site
        name a program's ``sites`` may name (a name not in it assigns the program to nobody)."""
        self.scenario = scenario
        self.aggregators = frozenset(aggregators) | frozenset(
            int(lfdi, 16) for lfdi in scenario.server.aggregators
        )
        names = site_lfdis or {}
        self._site_lfdis = dict(names)
        self.quirks = scenario.quirks
        self._rendered: dict[msgspec.Struct, bytes] = {}
        self._rendered_with = self.quirks
        self.start = int(start)
        settings = scenario.server
        self.pin = settings.pin
        self.post_rate_s = settings.post_rate_s
        self.poll_rates: dict[str, int] = dict.fromkeys(
            ("dcap", "time", "edev", "reg", "fsa", "derp", "der", "mup", "lel"),
            settings.poll_rate_s,
        )
        self.programs: list[ProgramRecord] = []
        self._program_by_key: dict[str, ProgramRecord] = {}
        for i, spec in enumerate(scenario.programs, start=1):
            program = ProgramRecord(
                index=i,
                key=spec.id,
                mrid=int(spec.mrid, 16) if spec.mrid else _PROGRAM_MRID + i,
                primacy=spec.primacy,
                description=spec.description,
                default=control_base(spec.default) if spec.default else None,
                default_grad_w=spec.set_grad_w,
                end_devices=(
                    frozenset(names[site] for site in spec.sites if site in names)
                    if spec.sites
                    else None
                ),
            )
            self.programs.append(program)
            self._program_by_key[spec.id] = program
        self.devices: list[DeviceRecord] = []
        self._devices_by_lfdi: dict[int, DeviceRecord] = {}
        self._devices_of: dict[int, list[DeviceRecord]] = {}
        self.mirrors: list[MirrorRecord] = []
        self.responses: list[tuple[int, r.Response]] = []  # (server time, as posted)
        self.failures: list[_Failure] = []
        self.slow: list[tuple[float, float, SlowResponses]] = []  # (start, end, spec)
        self.tls_failures: list[tuple[float, float]] = []  # [start, end) windows
        self._controls_by_mrid: dict[int, ControlRecord] = {}
        self._control_counter = 0
        self.tariffs = [
            TariffRecord(
                index=i,
                spec=spec,
                mrid=int(spec.mrid, 16) if spec.mrid else TARIFF_MRID + i,
                rate_mrid=int(spec.rate_mrid, 16) if spec.rate_mrid else RATE_MRID + i,
                intervals=[],
            )
            for i, spec in enumerate(scenario.tariffs, start=1)
        ]
        self.price_responses = []
        self._price_counter = 0
        self._init_subscriptions(
            "/edev/{e}/derp/{p}" if self.quirks.path_style == "envoy" else "/derp/{p}"
        )
        self.router: Router[_Fn] = Router()
        for method, template, fn in self._routes():
            self.router.add(method, template, fn)

    def _routes(self) -> list[tuple[str, str, _Fn]]:
        cls = UtilityState
        program_base = "/edev/{e}/derp/{p}" if self.quirks.path_style == "envoy" else "/derp/{p}"
        responses = (
            "/edev/{e}/rsps/{p}/rsp" if self.quirks.path_style == "envoy" else "/rsps/{p}/rsp"
        )
        return [
            ("GET", "/dcap", cls._get_dcap),
            ("GET", "/.well-known/csipaus", cls._get_well_known),
            ("GET", "/tm", cls._get_time),
            ("GET", "/edev", cls._get_edev_list),
            ("POST", "/edev", cls._post_edev),
            ("GET", "/edev/{e}", cls._get_edev),
            ("GET", "/edev/{e}/rg", cls._get_registration),
            ("GET", "/edev/{e}/fsa", cls._get_fsa_list),
            ("GET", "/edev/{e}/fsa/{f}", cls._get_fsa),
            ("GET", "/edev/{e}/fsa/{f}/derp", cls._get_program_list),
            ("GET", program_base, cls._get_program),
            ("GET", program_base + "/dderc", cls._get_default),
            ("GET", program_base + "/derc", cls._get_control_list),
            ("GET", program_base + "/derc/{c}", cls._get_control),
            ("GET", program_base + "/actderc", cls._get_active_list),
            ("GET", program_base + "/dc", cls._get_curve_list),
            ("POST", responses, cls._post_response),
            ("GET", "/edev/{e}/der", cls._get_der_list),
            ("GET", "/edev/{e}/der/{d}", cls._get_der),
            ("GET", "/edev/{e}/der/{d}/{info}", cls._get_der_info),
            ("PUT", "/edev/{e}/der/{d}/{info}", cls._put_der_info),
            ("GET", "/edev/{e}/cp", cls._get_connection_point),
            ("PUT", "/edev/{e}/cp", cls._put_connection_point),
            ("GET", "/edev/{e}/lel", cls._get_log_events),
            ("POST", "/edev/{e}/lel", cls._post_log_event),
            ("GET", "/edev/{e}/sub", cls._get_subscription_list),
            ("POST", "/edev/{e}/sub", cls._post_subscription),
            ("GET", "/edev/{e}/sub/{s}", cls._get_subscription),
            ("DELETE", "/edev/{e}/sub/{s}", cls._delete_subscription),
            ("GET", "/tp", cls._get_tariff_list),
            ("GET", "/tp/{t}", cls._get_tariff),
            ("GET", "/tp/{t}/rc", cls._get_rate_list),
            ("GET", "/tp/{t}/rc/{rc}", cls._get_rate),
            ("GET", "/tp/{t}/rc/{rc}/rt", cls._get_reading_type),
            ("GET", "/tp/{t}/rc/{rc}/tti", cls._get_interval_list),
            ("GET", "/tp/{t}/rc/{rc}/tti/{i}", cls._get_interval),
            ("GET", "/tp/{t}/rc/{rc}/tti/{i}/cti", cls._get_block_list),
            ("POST", "/rsps/price/rsp", cls._post_price_response),
            ("GET", "/mup", cls._get_mup_list),
            ("POST", "/mup", cls._post_mup),
            ("GET", "/mup/{m}", cls._get_mup),
            ("POST", "/mup/{m}", cls._post_readings),
        ]

    def handle(
        self,
        method: str,
        target: str,
        body: bytes,
        lfdi: str | int | None,
        now: float,
        *,
        content_type: str | None = None,
    ) -> SimReply:
        """Answer one request from the device whose certificate LFDI is ``lfdi`` at ``now``.

        ``content_type``: the request's Content-Type, when known; a body in anything but
        ``application/sep+xml`` (IEEE 2030.5 §B.2) is refused with 415."""
        if method.upper() == "HEAD":  # RFC 9110 §9.3.2: GET's status and headers, no content
            reply = self.handle("GET", target, body, lfdi, now, content_type=content_type)
            return dataclasses.replace(reply, body=b"")
        try:
            peer = int(lfdi, 16) if isinstance(lfdi, str) and lfdi else lfdi or None
        except ValueError:
            peer = None  # not an LFDI: treated as a device nobody registered
        if peer is not None and self.scenario.server.pre_registered:
            self._pre_register(peer, now)
        match = self.router.resolve(method, target)
        path = target.partition("?")[0]
        failure = self._failure_for(method, path, now)
        if failure is not None:
            spec = failure.spec
            if spec.reset:
                return SimReply(0, reset=True, reason="scenario: connection reset")
            return SimReply(
                spec.status,
                retry_after_s=spec.retry_after_s,
                reason=f"scenario: failing {path} until t+{failure.end - self.start:g} s",
            )
        if body and content_type is not None:
            media = content_type.partition(";")[0].strip().lower()
            if media != SEP_XML:
                return SimReply(415, reason=f"Content-Type {content_type!r}: expected {SEP_XML}")
        if not isinstance(match, Match):
            if match.status == 405:
                return SimReply(405, reason=f"{method} not allowed on {path}")
            return SimReply(404, reason=f"no resource at {path}")
        if (method.upper(), match.path.rstrip("/") or "/") not in _OPEN_PATHS and (
            not self.is_registered(peer)
        ):
            return SimReply(
                403,
                reason="the client certificate's LFDI has no EndDevice here "
                "(register by POSTing an EndDevice to the EndDeviceList first)",
            )
        ctx = _Ctx(method.upper(), match.path, match.params, match.query, body, peer, now)
        if "e" in match.params:
            device = self._device_param(match.params["e"])
            if device is None:
                return SimReply(404, reason=f"no EndDevice {match.params['e']!r}")
            if not self.acts_for(peer, device):
                return SimReply(403, reason=f"EndDevice {device.id} belongs to another LFDI")
        try:
            return match.handler(self, ctx)
        except _NotFound as exc:
            return SimReply(404, reason=str(exc))
        except ValueError as exc:  # bad paging parameters and other malformed input
            return SimReply(400, reason=str(exc))

    def _pre_register(self, lfdi: int, now: float) -> None:
        """``pre_registered``: an installer registered the device out of band (§2.4) with the
        scenario's PIN; the server holds its EndDevice before the device first asks for anything.
        Its deviceCategory is the gateway's default (DER, bit 25: what the installer entered).
        An aggregator's sites (``site_lfdis``) were registered for it the same way, in name order,
        when it first asks."""
        if lfdi in self.aggregators:
            if lfdi not in self._devices_of:
                for site in sorted(self._site_lfdis):
                    if self.device_by_lfdi(self._site_lfdis[site]) is None:
                        self._add_out_of_band(self._site_lfdis[site], registered_by=lfdi)
            return
        if not self.is_registered(lfdi):
            self._add_out_of_band(lfdi, registered_by=None)

    def _add_out_of_band(self, lfdi: int, *, registered_by: int | None) -> None:
        self._add_device(
            DeviceRecord(
                id=len(self.devices) + 1,
                lfdi=lfdi,
                sfdi=sfdi_from_lfdi(f"{lfdi:040X}"),
                device_category=_INSTALLER_DEVICE_CATEGORY,
                changed_time=self.start,
                registered_at=self.start,
                pin=self.pin,
                in_band=False,
                registered_by=registered_by,
            )
        )

    def _failure_for(self, method: str, path: str, now: float) -> _Failure | None:
        for failure in self.failures:
            spec = failure.spec
            if not failure.start <= now < failure.end:
                continue
            if spec.methods and method.upper() not in {m.upper() for m in spec.methods}:
                continue
            if spec.paths and not any(path.startswith(prefix) for prefix in spec.paths):
                continue
            return failure
        return None

    def delay_for(self, method: str, path: str, now: float) -> float:
        """Seconds a request arriving at ``now`` is held before it is handled (``slow`` windows;
        the longest delay of the windows that match)."""
        delay = 0.0
        for start, end, spec in self.slow:
            if not start <= now < end:
                continue
            if spec.methods and method.upper() not in {m.upper() for m in spec.methods}:
                continue
            if spec.paths and not any(path.startswith(prefix) for prefix in spec.paths):
                continue
            delay = max(delay, spec.delay_s)
        return delay

    def tls_fails(self, now: float) -> bool:
        """Whether a TLS handshake begun at ``now`` fails (a ``tls_fail`` window)."""
        return any(start <= now < end for start, end in self.tls_failures)

    def apply(self, action: Action, now: float) -> None:
        """Apply one scenario action at server time ``now``; a subscribed resource it changes gets
        its Notification queued (:meth:`take_outbox`)."""
        before = self.subscribed_renderings(now) if self.subscriptions else None
        self._apply(action, now)
        if before is not None:
            self.notify_changes(before, now)

    def _apply(self, action: Action, now: float) -> None:
        t = int(now)
        match action:
            case CreateControl():
                self._create_control(action, t)
            case CancelControl():
                control = self._controls_by_mrid[int(action.mrid, 16)]
                if control.cancelled_at is None:
                    control.cancelled_at = t
                    control.cancel_status = 3 if action.randomized else 2
            case ChangeControl():
                control = self._controls_by_mrid[int(action.mrid, 16)]
                control.base = control_base(action.modes)
                control.modes = action.modes.modes_set()
            case DeleteControl():
                self._controls_by_mrid[int(action.mrid, 16)].deleted = True
            case LoseMirrors():
                self.mirrors.clear()
            case ChangeDefault():
                program = self._program_by_key[action.program]
                program.default = None if action.modes.is_empty() else control_base(action.modes)
                program.default_grad_w = action.set_grad_w
                program.default_version += 1
            case SetPollRate():
                for key in self.poll_rates if action.resource == "all" else (action.resource,):
                    self.poll_rates[key] = action.seconds
            case SetPostRate():
                self.post_rate_s = action.seconds
            case FailRequests():
                self.failures.append(_Failure(now, now + action.duration_s, action))
            case RemoveProgram():
                self._program_by_key[action.program].in_fsa = False
            case RestoreProgram():
                self._program_by_key[action.program].in_fsa = True
            case SetPin():
                self.pin = action.pin
                for device in self.devices:
                    device.pin = action.pin
            case SlowResponses():
                self.slow.append((now, now + action.duration_s, action))
            case TlsFail():
                self.tls_failures.append((now, now + action.duration_s))
            case ClockSkew():
                pass  # the server's clock steps (SimUtilityServer), not its state
            case CreatePriceInterval():
                self._create_price_interval(action, t)
            case CancelPriceInterval():
                for tariff in self.tariffs:
                    for interval in tariff.intervals:
                        if interval.mrid == int(action.mrid, 16) and interval.cancelled_at is None:
                            interval.cancelled_at = t
                            interval.cancel_status = 3 if action.randomized else 2
            case ForgetSubscriptions():
                self.forget_subscriptions(now)
            case CancelSubscriptions():
                self.cancel_subscriptions(action, now)
            case LoseNotifications() | DuplicateNotifications() | DelayNotifications():
                self.add_notification_fault(action, now)
            case _ if isinstance(action, WORLD_FAULTS):
                pass  # carried out by the simulated world (sep2gw.world)
            case _:
                assert_never(action)

    def _create_control(self, action: CreateControl, t: int) -> None:
        program = self._program_by_key[action.program]
        self._control_counter += 1
        mrid = int(action.mrid, 16) if action.mrid else _CONTROL_MRID + self._control_counter
        control = ControlRecord(
            index=len(program.controls) + 1,
            program=program.index,
            mrid=mrid,
            creation_time=t,
            start=self.start + round(action.start_s),
            duration=action.duration_s,
            base=control_base(action.modes),
            modes=action.modes.modes_set(),
            response_required=(
                self.scenario.server.response_required
                if action.response_required is None
                else action.response_required
            ),
            randomize_start=action.randomize_start_s,
            randomize_duration=action.randomize_duration_s,
            device_category=action.device_category,
            description=action.description,
        )
        for other in self._controls_by_mrid.values():
            self._mark_supersession(control, other, t)
        program.controls.append(control)
        self._controls_by_mrid[mrid] = control

    def _create_price_interval(self, action: CreatePriceInterval, t: int) -> None:
        tariff = next(x for x in self.tariffs if x.spec.id == action.tariff)
        self._price_counter += 1
        blocks = (
            ((0, action.price),)
            if action.price is not None
            else tuple(sorted((b.start_value, b.price) for b in action.blocks))
        )
        tariff.intervals.append(
            PriceIntervalRecord(
                index=len(tariff.intervals) + 1,
                tariff=tariff.index,
                mrid=int(action.mrid, 16) if action.mrid else INTERVAL_MRID + self._price_counter,
                creation_time=t,
                start=self.start + round(action.start_s),
                duration=action.duration_s,
                blocks=blocks,
                tou_tier=action.tou_tier,
                response_required=(
                    self.scenario.server.response_required
                    if action.response_required is None
                    else action.response_required
                ),
                randomize_start=action.randomize_start_s,
                randomize_duration=action.randomize_duration_s,
                description=action.description,
            )
        )

    def _outranks(self, a: ControlRecord, b: ControlRecord) -> bool:
        """Supersession order (IEEE 2030.5 §10.10.2.2): lower DERProgram primacy wins; on a tie
        the later creationTime."""
        pa, pb = self.programs[a.program - 1].primacy, self.programs[b.program - 1].primacy
        return pa < pb or (pa == pb and a.creation_time > b.creation_time)

    def _mark_supersession(self, new: ControlRecord, other: ControlRecord, t: int) -> None:
        if other.cancelled_at is not None or not (new.modes & other.modes):
            return
        overlap = (
            new.start < other.start + other.duration and other.start < new.start + new.duration
        )
        if not overlap:
            return
        winner, loser = (new, other) if self._outranks(new, other) else (other, new)
        loser.potentially_superseded_at = t
        if loser.superseded_by is None:
            loser.superseded_by, loser.superseded_at = winner.mrid, t

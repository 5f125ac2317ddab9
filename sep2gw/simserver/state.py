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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, assert_never

import msgspec

from sep2gw.simserver.quirks import Quirks, apply_text_quirks
from sep2gw.simserver.scenario import (
    WORLD_FAULTS,
    Action,
    CancelControl,
    ChangeControl,
    ChangeDefault,
    ClockSkew,
    CreateControl,
    DeleteControl,
    FailRequests,
    LoseMirrors,
    Modes,
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
from transport.sep2 import Sep2DecodeError, decode, decode_any, encode
from transport.sep2 import resources as r
from transport.sep2.hexbinary import HexBinary8, HexBinary32, HexBinary128, HexBinary160
from transport.sep2.mapping import scaled

__all__ = [
    "ControlRecord",
    "DeviceRecord",
    "MirrorRecord",
    "ProgramRecord",
    "SimReply",
    "UtilityState",
    "event_status",
]

S = TypeVar("S", bound=msgspec.Struct)
T = TypeVar("T")

# Fixed mRID bodies of server-made identifiers (an "issuer" prefix, then a counter).
_PROGRAM_MRID = 0xD1500000_00000000_00000000_00000000
_DEFAULT_MRID = 0xDDC00000_00000000_00000000_00000000
_CONTROL_MRID = 0xDC000000_00000000_00000000_00000000
_FSA_MRID = 0xF5A00000_00000000_00000000_00000000
#: Rendered documents kept (all are forgotten when full: a long run's documents change slowly).
_RENDERED_CACHE = 256
_OPEN_PATHS = frozenset({("GET", "/dcap"), ("GET", "/tm"), ("GET", "/edev"), ("POST", "/edev")})
_SUBSCRIBABLE_NONE = 0
#: deviceCategory an installer enters for a pre-registered battery gateway (bit 25 of
#: DeviceCategoryType, the gateway's configured default).
_INSTALLER_DEVICE_CATEGORY = 1 << 25


@dataclass(frozen=True, slots=True)
class SimReply:
    """What the server answers. ``reason`` explains every 4xx/5xx (sent as a text body);
    ``parsed`` is the decoded request body (for the request record); ``reset`` drops the
    connection without an answer."""

    status: int
    body: bytes = b""
    location: str | None = None
    retry_after_s: int | None = None
    reason: str = ""
    parsed: msgspec.Struct | None = None
    reset: bool = False


@dataclass(slots=True)
class DeviceRecord:
    id: int
    lfdi: int
    sfdi: int
    device_category: int
    changed_time: int
    registered_at: int
    #: The Registration's pIN (§2.4): the installer's for an out-of-band registration, the server's
    #: choice for an in-band one.
    pin: int = 111115
    #: Registered by the device's own POST (``False``: by an installer, out of band).
    in_band: bool = True
    der_capability: r.DERCapability | None = None
    der_settings: r.DERSettings | None = None
    der_status: r.DERStatus | None = None
    der_availability: r.DERAvailability | None = None
    connection_point: r.ConnectionPointType | None = None
    log_events: list[r.LogEvent] = field(default_factory=list)


@dataclass(slots=True)
class ControlRecord:
    index: int
    program: int
    mrid: int
    creation_time: int
    start: int
    duration: int
    base: r.DERControlBase
    modes: frozenset[str]
    response_required: int
    randomize_start: int | None
    randomize_duration: int | None
    device_category: int | None
    description: str | None
    cancelled_at: int | None = None
    cancel_status: int = 2
    superseded_by: int | None = None
    superseded_at: int | None = None
    potentially_superseded_at: int | None = None
    deleted: bool = False  # vanished from the lists without a cancel (delete_control)


@dataclass(slots=True)
class ProgramRecord:
    index: int
    key: str
    mrid: int
    primacy: int
    description: str | None
    default: r.DERControlBase | None
    default_grad_w: int | None
    default_version: int = 0
    in_fsa: bool = True
    controls: list[ControlRecord] = field(default_factory=list)


@dataclass(slots=True)
class MirrorRecord:
    id: int
    owner_lfdi: int
    mup: r.MirrorUsagePoint
    created_at: int
    readings: list[tuple[int, r.MirrorMeterReading]] = field(default_factory=list)


@dataclass(slots=True)
class _Failure:
    start: float
    end: float
    spec: FailRequests


@dataclass(frozen=True, slots=True)
class _Ctx:
    method: str
    path: str
    params: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes
    lfdi: int | None
    now: float


_Fn = Callable[["UtilityState", _Ctx], SimReply]


def _active_power(watts: float | None) -> r.ActivePower | None:
    if watts is None:
        return None
    value, multiplier = scaled(watts)
    return r.ActivePower(value=value, multiplier=multiplier)


def control_base(modes: Modes) -> r.DERControlBase:
    """Scenario modes → the wire's DERControlBase (W as value × 10^multiplier, percentages in
    hundredths, rampTms in hundredths of a second)."""
    return r.DERControlBase(
        opModConnect=modes.opModConnect,
        opModEnergize=modes.opModEnergize,
        opModFixedW=None if modes.opModFixedW is None else round(modes.opModFixedW * 100),
        opModMaxLimW=None if modes.opModMaxLimW is None else round(modes.opModMaxLimW * 100),
        opModTargetW=_active_power(modes.opModTargetW),
        rampTms=None if modes.rampTms is None else round(modes.rampTms * 100),
        opModImpLimW=_active_power(modes.opModImpLimW),
        opModExpLimW=_active_power(modes.opModExpLimW),
        opModGenLimW=_active_power(modes.opModGenLimW),
        opModLoadLimW=_active_power(modes.opModLoadLimW),
        opModStorageTargetW=_active_power(modes.opModStorageTargetW),
    )


def event_status(control: ControlRecord, now: float, quirks: Quirks) -> r.EventStatus:
    """The server's ``EventStatus`` of a control at ``now`` (IEEE 2030.5 §10.10 event status):
    0 scheduled before the start, 1 active within [start, end), 2/3 once cancelled (3 = with
    randomisation), 4 superseded (2018 servers, ``status_superseded`` quirk), 5 completed after
    the end (2023, ``status_completed`` quirk). ``dateTime`` is when that status began."""
    end = control.start + control.duration
    status, since = 0, control.creation_time
    if control.cancelled_at is not None and now >= control.cancelled_at:
        status, since = control.cancel_status, control.cancelled_at
    elif (
        quirks.status_superseded
        and control.superseded_by is not None
        and control.superseded_at is not None
    ):
        status, since = 4, control.superseded_at
    elif quirks.status_completed and now >= end:
        status, since = 5, end
    elif now >= control.start:
        status, since = 1, control.start
    return r.EventStatus(
        currentStatus=status,
        dateTime=since,
        potentiallySuperseded=control.potentially_superseded_at is not None,
        potentiallySupersededTime=control.potentially_superseded_at,
    )


def _page(query: Mapping[str, str], total: int, one_item_default: bool) -> tuple[int, int]:
    """IEEE 2030.5 §5.4 list paging: ``s`` start index (default 0), ``l`` limit (default: all;
    one item under the ``one_item_default_paging`` quirk). Raises ValueError naming the key."""

    def number(key: str, default: int) -> int:
        text = query.get(key)
        if text is None:
            return default
        if not text.isdigit():
            raise ValueError(f"query parameter {key}={text!r} is not a non-negative integer")
        return int(text)

    start = number("s", 0)
    limit = number("l", 1 if one_item_default else max(total, 1))
    return start, min(limit, 0xFFFFFFFF)


class UtilityState:
    """One utility head-end, driven by a :class:`Scenario`. ``start`` is the server epoch second
    at which the scenario's offsets count from."""

    def __init__(self, scenario: Scenario, *, start: float) -> None:
        self.scenario = scenario
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
            )
            self.programs.append(program)
            self._program_by_key[spec.id] = program
        self.devices: list[DeviceRecord] = []
        self.mirrors: list[MirrorRecord] = []
        self.responses: list[tuple[int, r.Response]] = []  # (server time, as posted)
        self.failures: list[_Failure] = []
        self.slow: list[tuple[float, float, SlowResponses]] = []  # (start, end, spec)
        self.tls_failures: list[tuple[float, float]] = []  # [start, end) windows
        self._controls_by_mrid: dict[int, ControlRecord] = {}
        self._control_counter = 0
        self.router: Router[_Fn] = Router()
        for method, template, fn in self._routes():
            self.router.add(method, template, fn)

    # ---------------------------------------------------------------------------------- paths

    def program_path(self, program: ProgramRecord, device: DeviceRecord | None) -> str:
        if self.quirks.path_style == "envoy" and device is not None:
            return f"/edev/{device.id}/derp/{program.index}"
        return f"/derp/{program.index}"

    def reply_to(self, program: ProgramRecord, device: DeviceRecord | None) -> str:
        if self.quirks.path_style == "envoy" and device is not None:
            return f"/edev/{device.id}/rsps/{program.index}/rsp"
        return f"/rsps/{program.index}/rsp"

    def _routes(self) -> list[tuple[str, str, _Fn]]:
        cls = UtilityState
        program_base = "/edev/{e}/derp/{p}" if self.quirks.path_style == "envoy" else "/derp/{p}"
        responses = (
            "/edev/{e}/rsps/{p}/rsp" if self.quirks.path_style == "envoy" else "/rsps/{p}/rsp"
        )
        return [
            ("GET", "/dcap", cls._get_dcap),
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
            ("GET", "/mup", cls._get_mup_list),
            ("POST", "/mup", cls._post_mup),
            ("GET", "/mup/{m}", cls._get_mup),
            ("POST", "/mup/{m}", cls._post_readings),
        ]

    # ------------------------------------------------------------------------------- entry point

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
            peer is None or self.device_by_lfdi(peer) is None
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
            if device.lfdi != peer:
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
        Its deviceCategory is the gateway's default (DER, bit 25: what the installer entered)."""
        if self.device_by_lfdi(lfdi) is not None:
            return
        self.devices.append(
            DeviceRecord(
                id=len(self.devices) + 1,
                lfdi=lfdi,
                sfdi=sfdi_from_lfdi(f"{lfdi:040X}"),
                device_category=_INSTALLER_DEVICE_CATEGORY,
                changed_time=self.start,
                registered_at=self.start,
                pin=self.pin,
                in_band=False,
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

    # ---------------------------------------------------------------------------------- actions

    def apply(self, action: Action, now: float) -> None:
        """Apply one scenario action at server time ``now``."""
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

    # ---------------------------------------------------------------------------------- lookups

    def device_by_lfdi(self, lfdi: int) -> DeviceRecord | None:
        """Find an EndDevice by LFDI, compared numerically (hexBinary: case and leading zeros do
        not matter)."""
        for device in self.devices:
            if device.lfdi == lfdi:
                return device
        return None

    def device_by_sfdi(self, sfdi: int) -> DeviceRecord | None:
        for device in self.devices:
            if device.sfdi == sfdi:
                return device
        return None

    def control(self, mrid: int | str) -> ControlRecord | None:
        return self._controls_by_mrid.get(int(mrid, 16) if isinstance(mrid, str) else mrid)

    def _device_param(self, text: str) -> DeviceRecord | None:
        if text.isdigit() and 1 <= int(text) <= len(self.devices):
            return self.devices[int(text) - 1]
        return None

    def _own_device(self, ctx: _Ctx) -> DeviceRecord:
        assert ctx.lfdi is not None
        device = self.device_by_lfdi(ctx.lfdi)
        assert device is not None  # handle() refused unregistered peers
        return device

    def _program_param(self, ctx: _Ctx) -> ProgramRecord:
        text = ctx.params["p"]
        if not (text.isdigit() and 1 <= int(text) <= len(self.programs)):
            raise _NotFound(f"no DERProgram {text!r}")
        return self.programs[int(text) - 1]

    # ------------------------------------------------------------------------------- documents

    def _doc(self, obj: msgspec.Struct, status: int = 200) -> SimReply:
        # A resource whose value has not changed since it was last served renders to the same
        # bytes (under the same quirks): most polls ask for an unchanged document.
        if self._rendered_with is not self.quirks:
            self._rendered.clear()
            self._rendered_with = self.quirks
        try:
            data = self._rendered.get(obj)
        except TypeError:  # a value that cannot be hashed is rendered every time
            return SimReply(status, self._render(obj))
        if data is None:
            data = self._render(obj)
            if len(self._rendered) >= _RENDERED_CACHE:
                self._rendered.clear()
            self._rendered[obj] = data
        return SimReply(status, data)

    def _render(self, obj: msgspec.Struct) -> bytes:
        data = encode(obj, csipaus_ns=self.quirks.csipaus_ns)
        return apply_text_quirks(data, self.quirks)

    def _get_dcap(self, ctx: _Ctx) -> SimReply:
        return self._doc(
            r.DeviceCapability(
                href="/dcap",
                pollRate=self.poll_rates["dcap"],
                TimeLink=r.TimeLink(href="/tm"),
                EndDeviceListLink=r.EndDeviceListLink(
                    href="/edev", all=len(self._visible_devices(ctx))
                ),
                MirrorUsagePointListLink=r.MirrorUsagePointListLink(
                    href="/mup", all=len(self._visible_mirrors(ctx))
                ),
            )
        )

    def _get_time(self, ctx: _Ctx) -> SimReply:
        settings = self.scenario.server
        now = int(ctx.now)
        return self._doc(
            r.Time(
                href="/tm",
                currentTime=now,
                dstEndTime=0,
                dstOffset=settings.dst_offset_s,
                dstStartTime=0,
                quality=settings.time_quality,
                tzOffset=settings.tz_offset_s,
                localTime=now + settings.tz_offset_s + settings.dst_offset_s,
                pollRate=self.poll_rates["time"],
            )
        )

    def _visible_devices(self, ctx: _Ctx) -> list[DeviceRecord]:
        return [d for d in self.devices if d.lfdi == ctx.lfdi]

    def _visible_mirrors(self, ctx: _Ctx) -> list[MirrorRecord]:
        return [m for m in self.mirrors if m.owner_lfdi == ctx.lfdi]

    def _end_device(self, device: DeviceRecord) -> r.EndDevice:
        base = f"/edev/{device.id}"
        return r.EndDevice(
            href=base,
            subscribable=_SUBSCRIBABLE_NONE,
            sFDI=device.sfdi,
            DERListLink=r.DERListLink(href=f"{base}/der", all=1),
            deviceCategory=HexBinary32(device.device_category),
            lFDI=HexBinary160(device.lfdi),
            LogEventListLink=r.LogEventListLink(href=f"{base}/lel", all=len(device.log_events)),
            changedTime=device.changed_time,
            enabled=True,
            FunctionSetAssignmentsListLink=r.FunctionSetAssignmentsListLink(
                href=f"{base}/fsa", all=1
            ),
            postRate=self.post_rate_s,
            RegistrationLink=(
                r.RegistrationLink(href=f"{base}/rg")
                if self.scenario.server.registration_link
                else None
            ),
            ConnectionPointLink=(
                r.Link(href=f"{base}/cp") if self.scenario.server.connection_point else None
            ),
        )

    def _get_edev_list(self, ctx: _Ctx) -> SimReply:
        devices = self._visible_devices(ctx)
        page = self._page_of(ctx, devices)
        return self._doc(
            r.EndDeviceList(
                href="/edev",
                subscribable=_SUBSCRIBABLE_NONE,
                all=len(devices),
                results=len(page),
                pollRate=self.poll_rates["edev"],
                EndDevice=tuple(self._end_device(d) for d in page),
            )
        )

    def _post_edev(self, ctx: _Ctx) -> SimReply:
        """In-band registration (IEEE 2030.5 §6.3.5, CSIP §5.2.1): a device POSTs its EndDevice;
        201 + Location. Its lFDI must be the one of the presenting certificate, and its sFDI the
        one derived from that LFDI."""
        edev = _decode(ctx.body, r.EndDevice)
        if isinstance(edev, SimReply):
            return edev
        if not self.scenario.server.register_in_band:
            return SimReply(403, reason="in-band registration is disabled", parsed=edev)
        if ctx.lfdi is None:
            return SimReply(403, reason="no client certificate LFDI", parsed=edev)
        if edev.lFDI is None or int(edev.lFDI) != ctx.lfdi:
            return SimReply(
                403,
                reason=f"EndDevice lFDI {edev.lFDI!r} is not the client certificate's LFDI "
                f"{ctx.lfdi:040X}",
                parsed=edev,
            )
        expected_sfdi = sfdi_from_lfdi(f"{ctx.lfdi:040X}")
        if edev.sFDI != expected_sfdi:
            return SimReply(
                400,
                reason=f"/EndDevice/sFDI: {edev.sFDI} is not the SFDI of the LFDI "
                f"({expected_sfdi})",
                parsed=edev,
            )
        existing = self.device_by_lfdi(ctx.lfdi)
        if existing is not None:  # re-registration: the same resource, as real servers answer
            return SimReply(201, location=f"/edev/{existing.id}", parsed=edev)
        device = DeviceRecord(
            id=len(self.devices) + 1,
            lfdi=ctx.lfdi,
            sfdi=edev.sFDI,
            device_category=int(edev.deviceCategory or 0),
            changed_time=edev.changedTime,
            registered_at=int(ctx.now),
            pin=self.scenario.server.in_band_pin
            if self.scenario.server.in_band_pin is not None
            else self.pin,
        )
        self.devices.append(device)
        return SimReply(201, location=f"/edev/{device.id}", parsed=edev)

    def _get_edev(self, ctx: _Ctx) -> SimReply:
        return self._doc(self._end_device(self._own_device(ctx)))

    def _page_of(self, ctx: _Ctx, items: Sequence[T]) -> list[T]:
        """The page of a list that ``?s=&l=`` asks for (one item by default under the quirk)."""
        start, limit = _page(ctx.query, len(items), self.quirks.one_item_default_paging)
        return list(items[start : start + limit])

    def _get_registration(self, ctx: _Ctx) -> SimReply:
        device = self._own_device(ctx)
        if not self.scenario.server.registration_link:
            return SimReply(404, reason=f"EndDevice {device.id} has no Registration")
        return self._doc(
            r.Registration(
                href=f"/edev/{device.id}/rg",
                dateTimeRegistered=device.registered_at,
                pIN=device.pin,
                pollRate=self.poll_rates["reg"],
            )
        )

    def _fsa_programs(self) -> list[ProgramRecord]:
        return sorted((p for p in self.programs if p.in_fsa), key=lambda p: (p.primacy, p.index))

    def _fsa(self, device: DeviceRecord) -> r.FunctionSetAssignments:
        base = f"/edev/{device.id}/fsa/1"
        return r.FunctionSetAssignments(
            href=base,
            mRID=HexBinary128(_FSA_MRID + device.id),
            description="simulated utility programs",
            DERProgramListLink=r.DERProgramListLink(
                href=f"{base}/derp", all=len(self._fsa_programs())
            ),
            TimeLink=r.TimeLink(href="/tm"),
        )

    def _get_fsa_list(self, ctx: _Ctx) -> SimReply:
        device = self._own_device(ctx)
        items = [self._fsa(device)]
        page = self._page_of(ctx, items)
        return self._doc(
            r.FunctionSetAssignmentsList(
                href=f"/edev/{device.id}/fsa",
                subscribable=_SUBSCRIBABLE_NONE,
                all=len(items),
                results=len(page),
                pollRate=self.poll_rates["fsa"],
                FunctionSetAssignments=tuple(page),
            )
        )

    def _get_fsa(self, ctx: _Ctx) -> SimReply:
        if ctx.params["f"] != "1":
            return SimReply(404, reason=f"no FunctionSetAssignments {ctx.params['f']!r}")
        return self._doc(self._fsa(self._own_device(ctx)))

    def _program(self, program: ProgramRecord, device: DeviceRecord, now: float) -> r.DERProgram:
        base = self.program_path(program, device)
        return r.DERProgram(
            href=base,
            subscribable=_SUBSCRIBABLE_NONE,
            mRID=HexBinary128(program.mrid),
            description=program.description,
            primacy=program.primacy,
            ActiveDERControlListLink=r.ActiveDERControlListLink(
                href=f"{base}/actderc", all=len(self._active(program, now))
            ),
            DefaultDERControlLink=(
                r.DefaultDERControlLink(href=f"{base}/dderc") if program.default else None
            ),
            DERControlListLink=r.DERControlListLink(
                href=f"{base}/derc", all=len(self._listed(program))
            ),
            DERCurveListLink=r.DERCurveListLink(href=f"{base}/dc", all=0),
        )

    def _get_program_list(self, ctx: _Ctx) -> SimReply:
        if ctx.params["f"] != "1":
            return SimReply(404, reason=f"no FunctionSetAssignments {ctx.params['f']!r}")
        device = self._own_device(ctx)
        programs = self._fsa_programs()
        page = self._page_of(ctx, programs)
        return self._doc(
            r.DERProgramList(
                href=f"/edev/{device.id}/fsa/1/derp",
                subscribable=_SUBSCRIBABLE_NONE,
                all=len(programs),
                results=len(page),
                pollRate=self.poll_rates["derp"],
                DERProgram=tuple(self._program(p, device, ctx.now) for p in page),
            )
        )

    def _get_program(self, ctx: _Ctx) -> SimReply:
        return self._doc(self._program(self._program_param(ctx), self._own_device(ctx), ctx.now))

    def _get_default(self, ctx: _Ctx) -> SimReply:
        program = self._program_param(ctx)
        if program.default is None:
            return SimReply(404, reason=f"DERProgram {program.index} has no DefaultDERControl")
        base = self.program_path(program, self._own_device(ctx))
        return self._doc(
            r.DefaultDERControl(
                href=f"{base}/dderc",
                subscribable=_SUBSCRIBABLE_NONE,
                mRID=HexBinary128(_DEFAULT_MRID + program.index),
                description=f"default of {program.key}",
                version=program.default_version,
                DERControlBase=program.default,
                setGradW=program.default_grad_w,
            )
        )

    def _wire_control(
        self, program: ProgramRecord, control: ControlRecord, device: DeviceRecord, now: float
    ) -> r.DERControl:
        base = self.program_path(program, device)
        return r.DERControl(
            href=f"{base}/derc/{control.index}",
            replyTo=self.reply_to(program, device),
            responseRequired=HexBinary8(control.response_required),
            mRID=HexBinary128(control.mrid),
            subscribable=_SUBSCRIBABLE_NONE,
            description=control.description,
            creationTime=control.creation_time,
            EventStatus=event_status(control, now, self.quirks),
            interval=r.DateTimeInterval(duration=control.duration, start=control.start),
            randomizeDuration=control.randomize_duration,
            randomizeStart=control.randomize_start,
            DERControlBase=control.base,
            deviceCategory=(
                None if control.device_category is None else HexBinary32(control.device_category)
            ),
        )

    def _ordered(self, controls: list[ControlRecord]) -> list[ControlRecord]:
        """List order of events (IEEE 2030.5 §10.10.3.1): interval.start ascending, then
        creationTime descending, then mRID descending."""
        return sorted(controls, key=lambda c: (c.start, -c.creation_time, -c.mrid))

    def _control_page(
        self, ctx: _Ctx, program: ProgramRecord, controls: list[ControlRecord], href: str
    ) -> SimReply:
        device = self._own_device(ctx)
        ordered = self._ordered(controls)
        page = self._page_of(ctx, ordered)
        return self._doc(
            r.DERControlList(
                href=href,
                subscribable=_SUBSCRIBABLE_NONE,
                all=len(ordered),
                results=len(page),
                DERControl=tuple(self._wire_control(program, c, device, ctx.now) for c in page),
            )
        )

    def _get_control_list(self, ctx: _Ctx) -> SimReply:
        program = self._program_param(ctx)
        href = self.program_path(program, self._own_device(ctx)) + "/derc"
        return self._control_page(ctx, program, self._listed(program), href)

    def _listed(self, program: ProgramRecord) -> list[ControlRecord]:
        return [c for c in program.controls if not c.deleted]

    def _active(self, program: ProgramRecord, now: float) -> list[ControlRecord]:
        return [
            c for c in self._listed(program) if event_status(c, now, self.quirks).currentStatus == 1
        ]

    def _get_active_list(self, ctx: _Ctx) -> SimReply:
        program = self._program_param(ctx)
        href = self.program_path(program, self._own_device(ctx)) + "/actderc"
        return self._control_page(ctx, program, self._active(program, ctx.now), href)

    def _get_control(self, ctx: _Ctx) -> SimReply:
        program = self._program_param(ctx)
        text = ctx.params["c"]
        if not (text.isdigit() and 1 <= int(text) <= len(program.controls)):
            return SimReply(404, reason=f"no DERControl {text!r} in DERProgram {program.index}")
        control = program.controls[int(text) - 1]
        if control.deleted:
            return SimReply(
                404, reason=f"DERControl {text!r} of DERProgram {program.index} is gone"
            )
        return self._doc(self._wire_control(program, control, self._own_device(ctx), ctx.now))

    def _get_curve_list(self, ctx: _Ctx) -> SimReply:
        program = self._program_param(ctx)
        href = self.program_path(program, self._own_device(ctx)) + "/dc"
        return self._doc(r.DERCurveList(href=href, all=0, results=0))

    def _post_response(self, ctx: _Ctx) -> SimReply:
        """Responses to events (IEEE 2030.5 §12.1.3): POSTed to the event's replyTo; the subject
        must be an event of that program and endDeviceLFDI the poster's own LFDI."""
        program = self._program_param(ctx)
        parsed = _decode_any(ctx.body, (r.DERControlResponse, r.Response))
        if isinstance(parsed, SimReply):
            return parsed
        control = self._controls_by_mrid.get(int(parsed.subject))
        if control is None or control.program != program.index:
            return SimReply(
                400,
                reason=f"/{type(parsed).__name__}/subject: {int(parsed.subject):032X} is not a "
                f"DERControl of DERProgram {program.index}",
                parsed=parsed,
            )
        if int(parsed.endDeviceLFDI) != ctx.lfdi:
            return SimReply(
                400,
                reason=f"/{type(parsed).__name__}/endDeviceLFDI: not the client certificate's LFDI",
                parsed=parsed,
            )
        self.responses.append((int(ctx.now), parsed))
        location = f"{self.reply_to(program, self._own_device(ctx))}/{len(self.responses)}"
        return SimReply(201, location=location, parsed=parsed)

    def _der(self, device: DeviceRecord) -> r.DER:
        base = f"/edev/{device.id}/der/1"
        return r.DER(
            href=base,
            subscribable=_SUBSCRIBABLE_NONE,
            AssociatedDERProgramListLink=r.AssociatedDERProgramListLink(
                href=f"/edev/{device.id}/fsa/1/derp", all=len(self._fsa_programs())
            ),
            DERAvailabilityLink=r.DERAvailabilityLink(href=f"{base}/derav"),
            DERCapabilityLink=r.DERCapabilityLink(href=f"{base}/dercap"),
            DERSettingsLink=r.DERSettingsLink(href=f"{base}/derg"),
            DERStatusLink=r.DERStatusLink(href=f"{base}/ders"),
        )

    def _get_der_list(self, ctx: _Ctx) -> SimReply:
        device = self._own_device(ctx)
        items = [self._der(device)]
        page = self._page_of(ctx, items)
        return self._doc(
            r.DERList(
                href=f"/edev/{device.id}/der",
                all=len(items),
                results=len(page),
                pollRate=self.poll_rates["der"],
                DER=tuple(page),
            )
        )

    def _get_der(self, ctx: _Ctx) -> SimReply:
        if ctx.params["d"] != "1":
            return SimReply(404, reason=f"no DER {ctx.params['d']!r}")
        return self._doc(self._der(self._own_device(ctx)))

    _DER_INFO: dict[str, tuple[str, type[msgspec.Struct]]] = {
        "dercap": ("der_capability", r.DERCapability),
        "derg": ("der_settings", r.DERSettings),
        "ders": ("der_status", r.DERStatus),
        "derav": ("der_availability", r.DERAvailability),
    }

    def _der_info_slot(self, ctx: _Ctx) -> tuple[str, type[msgspec.Struct]]:
        if ctx.params["d"] != "1" or ctx.params["info"] not in self._DER_INFO:
            raise _NotFound(f"no resource at {ctx.path}")
        return self._DER_INFO[ctx.params["info"]]

    def _get_der_info(self, ctx: _Ctx) -> SimReply:
        attr, _ = self._der_info_slot(ctx)
        value = getattr(self._own_device(ctx), attr)
        if value is None:
            return SimReply(404, reason=f"{ctx.path}: nothing PUT here yet")
        return self._doc(msgspec.structs.replace(value, href=ctx.path))

    def _put_der_info(self, ctx: _Ctx) -> SimReply:
        """DER information (CSIP §5.2.4, PROTOCOL.md §2.7): the device PUTs DERCapability,
        DERSettings, DERStatus and DERAvailability; stored as sent; 204."""
        attr, cls = self._der_info_slot(ctx)
        parsed = _decode(ctx.body, cls)
        if isinstance(parsed, SimReply):
            return parsed
        setattr(self._own_device(ctx), attr, parsed)
        return SimReply(204, parsed=parsed)

    def _get_connection_point(self, ctx: _Ctx) -> SimReply:
        device = self._own_device(ctx)
        if not self.scenario.server.connection_point:
            return SimReply(404, reason="this server has no ConnectionPoint resources")
        if device.connection_point is None:
            return SimReply(404, reason=f"{ctx.path}: nothing PUT here yet")
        return self._doc(msgspec.structs.replace(device.connection_point, href=ctx.path))

    def _put_connection_point(self, ctx: _Ctx) -> SimReply:
        """CSIP-AUS ConnectionPoint: the device PUTs its NMI; 204."""
        if not self.scenario.server.connection_point:
            return SimReply(404, reason="this server has no ConnectionPoint resources")
        parsed = _decode(ctx.body, r.ConnectionPointType)
        if isinstance(parsed, SimReply):
            return parsed
        self._own_device(ctx).connection_point = parsed
        return SimReply(204, parsed=parsed)

    def _get_log_events(self, ctx: _Ctx) -> SimReply:
        device = self._own_device(ctx)
        events = device.log_events
        page = self._page_of(ctx, events)
        return self._doc(
            r.LogEventList(
                href=f"/edev/{device.id}/lel",
                subscribable=_SUBSCRIBABLE_NONE,
                all=len(events),
                results=len(page),
                pollRate=self.poll_rates["lel"],
                LogEvent=tuple(page),
            )
        )

    def _post_log_event(self, ctx: _Ctx) -> SimReply:
        parsed = _decode(ctx.body, r.LogEvent)
        if isinstance(parsed, SimReply):
            return parsed
        device = self._own_device(ctx)
        device.log_events.append(
            msgspec.structs.replace(
                parsed, href=f"/edev/{device.id}/lel/{len(device.log_events) + 1}"
            )
        )
        return SimReply(
            201, location=f"/edev/{device.id}/lel/{len(device.log_events)}", parsed=parsed
        )

    def _mup(self, mirror: MirrorRecord) -> r.MirrorUsagePoint:
        return msgspec.structs.replace(
            mirror.mup, href=f"/mup/{mirror.id}", postRate=self.post_rate_s
        )

    def _get_mup_list(self, ctx: _Ctx) -> SimReply:
        mirrors = self._visible_mirrors(ctx)
        page = self._page_of(ctx, mirrors)
        return self._doc(
            r.MirrorUsagePointList(
                href="/mup",
                all=len(mirrors),
                results=len(page),
                pollRate=self.poll_rates["mup"],
                MirrorUsagePoint=tuple(self._mup(m) for m in page),
            )
        )

    def _post_mup(self, ctx: _Ctx) -> SimReply:
        """Metering mirror (IEEE 2030.5 §10.8.4): POST a MirrorUsagePoint → 201 + Location; a
        MirrorUsagePoint with an mRID already mirrored for this device answers that one's
        Location (the device may have lost it)."""
        parsed = _decode(ctx.body, r.MirrorUsagePoint)
        if isinstance(parsed, SimReply):
            return parsed
        assert ctx.lfdi is not None
        for mirror in self.mirrors:
            if mirror.owner_lfdi == ctx.lfdi and int(mirror.mup.mRID) == int(parsed.mRID):
                mirror.mup = parsed
                return SimReply(201, location=f"/mup/{mirror.id}", parsed=parsed)
        mirror = MirrorRecord(len(self.mirrors) + 1, ctx.lfdi, parsed, int(ctx.now))
        self.mirrors.append(mirror)
        return SimReply(201, location=f"/mup/{mirror.id}", parsed=parsed)

    def _mirror_param(self, ctx: _Ctx) -> MirrorRecord:
        text = ctx.params["m"]
        if text.isdigit() and 1 <= int(text) <= len(self.mirrors):
            mirror = self.mirrors[int(text) - 1]
            if mirror.owner_lfdi == ctx.lfdi:
                return mirror
        raise _NotFound(f"no MirrorUsagePoint {text!r} of this device")

    def _get_mup(self, ctx: _Ctx) -> SimReply:
        return self._doc(self._mup(self._mirror_param(ctx)))

    def _post_readings(self, ctx: _Ctx) -> SimReply:
        """Readings to a mirror (IEEE 2030.5 §10.8.4): a MirrorMeterReading (with its
        MirrorReadingSets) or a MirrorMeterReadingList POSTed to the MirrorUsagePoint."""
        mirror = self._mirror_param(ctx)
        parsed = _decode_any(ctx.body, (r.MirrorMeterReading, r.MirrorMeterReadingList))
        if isinstance(parsed, SimReply):
            return parsed
        readings: list[r.MirrorMeterReading] = (
            list(parsed.MirrorMeterReading)
            if isinstance(parsed, r.MirrorMeterReadingList)
            else [parsed]
            if isinstance(parsed, r.MirrorMeterReading)
            else []
        )
        known = {int(m.mRID) for m in mirror.mup.MirrorMeterReading}
        for reading in readings:
            if known and int(reading.mRID) not in known:
                return SimReply(
                    400,
                    reason=f"/MirrorMeterReading/mRID: {int(reading.mRID):032X} is not a "
                    f"MirrorMeterReading of MirrorUsagePoint {mirror.id}",
                    parsed=parsed,
                )
        for reading in readings:
            mirror.readings.append((int(ctx.now), reading))
        return SimReply(201, location=f"/mup/{mirror.id}", parsed=parsed)


class _NotFound(ValueError):
    pass


def _refusal(exc: Sep2DecodeError) -> SimReply:
    return SimReply(400, reason=f"{type(exc).__name__}: {exc}")


def _decode(body: bytes, cls: type[S]) -> S | SimReply:
    if not body:
        return SimReply(400, reason=f"empty body: expected a {cls.__name__} document")
    try:
        return decode(body, cls)
    except Sep2DecodeError as exc:
        return _refusal(exc)


def _decode_any(body: bytes, classes: tuple[type[S], ...]) -> S | SimReply:
    names = " or ".join(c.__name__ for c in classes)
    if not body:
        return SimReply(400, reason=f"empty body: expected a {names} document")
    try:
        parsed: Any = decode_any(body)
    except Sep2DecodeError as exc:
        return _refusal(exc)
    if type(parsed) not in classes:
        return SimReply(400, reason=f"/{type(parsed).__name__}: expected a {names} document")
    result: S = parsed
    return result

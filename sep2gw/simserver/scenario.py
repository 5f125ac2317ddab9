"""Scenario files of the simulated utility server: what the utility is and does over time (TOML).

A scenario names the server's settings, its quirks (``sep2gw.simserver.quirks``), its DERPrograms
with their defaults, and a timeline of utility actions at offsets from the scenario start::

    [server]
    pin = 111115
    poll_rate_s = 60
    post_rate_s = 60

    [quirks]
    path_style = "envoy"

    [[programs]]
    id = "base"
    primacy = 20
    default = { opModExpLimW = 5000 }

    [[actions]]
    at_s = 0
    kind = "create_control"
    mrid = "A1"
    program = "base"
    start_s = 60
    duration_s = 120
    modes = { opModExpLimW = 1500 }

Faults are actions too: ``fail`` (5xx answers or connection resets for a window), ``slow``
(answers ``delay_s`` late), ``tls_fail`` (handshakes fail, open connections drop), ``clock_skew``
(the utility's clock steps by ``seconds``) are the server's; ``modbus_timeout``, ``battery_fault``,
``operator`` (someone at the device stops, starts or disconnects the inverter) and ``crash`` (the gateway dies, losing what its log writer had not committed, and restarts on the
same log ``down_s`` later) are carried out by the simulated world (``sep2gw.world``) on the device's
clock, and ignored by the server's state model.

Subscriptions (``sep2gw.simserver.families.subscriptions``): ``[server] subscriptions`` says who
may subscribe (``"aggregator"``: the LFDIs in ``aggregators``, as the public servers; ``"all"``;
``"none"``), with ``subscription_limit_max``, ``subscriptions_per_device`` and the ``base_url`` that
Notifications name their subscription under. Actions: ``forget_subscriptions`` (a restart loses
them silently), ``cancel_subscriptions`` (ended with a status-1 Notification, optionally only
``resources`` under given path prefixes), and the notifier's faults ``lose_notifications`` and
``duplicate_notifications`` (each notification made in the window, with ``probability`` drawn from
the world's seed) and ``delay_notifications`` (sent ``delay_s`` late).

A hostile server (``sep2gw.simserver.hostile``) is a window too, outside the timeline: ``[[hostile]]``
with ``behaviour`` (one of :data:`HOSTILE_BEHAVIOURS`), ``at_s`` and ``duration_s`` makes the server
inject that one fault class while the window is open (``hostile = [{ behaviour =
"http_truncated_body", at_s = 60, duration_s = 150 }]``).

Mode keys keep the schema's spelling; powers are in watts (written on the wire as value and
power-of-ten multiplier), ``opModMaxLimW``/``opModFixedW`` in percent, ``rampTms`` in seconds.
Errors (:class:`ScenarioError`) name the key and the problem.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Final, Literal, get_args

import msgspec

from events.registry import CATALOGUE
from sep2gw.simserver.expectations import Expect, check_expect
from sep2gw.simserver.quirks import Quirks
from sep2gw.tomlfile import TomlProblem, decode_toml
from transport.sep2.codec import csipaus_defines
from transport.sep2.mapping import scaled
from transport.sep2.schema_order import TYPES
from transport.sep2.versions import version_by_name

__all__ = [
    "Action",
    "FleetSettings",
    "SiteFaultSpec",
    "BatteryFault",
    "BatterySettings",
    "CancelControl",
    "CancelSubscriptions",
    "ChangeControl",
    "ChangeDefault",
    "ClockSkew",
    "CrashGateway",
    "DerDisconnect",
    "CreateControl",
    "DelayNotifications",
    "DeleteControl",
    "DuplicateNotifications",
    "FailRequests",
    "ForgetSubscriptions",
    "GatewaySettings",
    "HOSTILE_BEHAVIOURS",
    "HostileName",
    "HostileWindow",
    "LoseMirrors",
    "LoseNotifications",
    "ModbusTimeout",
    "NOTIFICATION_FAULTS",
    "Modes",
    "OperatorCommand",
    "ProgramSpec",
    "RemoveProgram",
    "RestoreProgram",
    "Scenario",
    "ScenarioError",
    "ServerSettings",
    "SetPin",
    "SetPollRate",
    "SetPostRate",
    "SlowResponses",
    "TlsFail",
    "WORLD_FAULTS",
    "demo_scenario",
    "load_scenario",
    "parse_scenario",
    "under_version",
]

#: Resources whose pollRate a scenario can set (``"all"`` sets every one).
PollResource = Literal["all", "dcap", "time", "edev", "reg", "fsa", "derp", "der", "mup", "lel"]

_HEX = re.compile(r"[0-9A-Fa-f]{1,32}")
_NMI = re.compile(r"[A-HJ-NP-Z0-9]{10,11}")  # as sep2gw.config checks a site's NMI


class ScenarioError(ValueError):
    """A scenario that cannot be used; every problem names its key (``actions[2].program``)."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


class _Strict(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Unknown keys are errors: a misspelt mode silently ignored would make a scenario lie."""


class Modes(_Strict, frozen=True, kw_only=True):
    """Control modes in schema spelling. W in watts, percentages in percent, rampTms in seconds."""

    opModConnect: bool | None = None
    opModEnergize: bool | None = None
    opModExpLimW: float | None = None
    opModImpLimW: float | None = None
    opModGenLimW: float | None = None
    opModLoadLimW: float | None = None
    opModTargetW: float | None = None
    opModStorageTargetW: float | None = None
    opModMaxLimW: float | None = None
    opModFixedW: float | None = None
    rampTms: float | None = None

    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in self.__struct_fields__)

    def modes_set(self) -> frozenset[str]:
        """The control modes this sets (rampTms is a parameter, not a mode)."""
        return frozenset(
            name
            for name in self.__struct_fields__
            if name != "rampTms" and getattr(self, name) is not None
        )


class ProgramSpec(_Strict, frozen=True, kw_only=True):
    id: str
    primacy: int
    mrid: str | None = None
    description: str | None = None
    default: Modes | None = None
    set_grad_w: int | None = None  # DefaultDERControl.setGradW, hundredths of % of setMaxW per s
    #: Fleet site names the program is assigned to (empty: every EndDevice): a program shared by
    #: several EndDevices of an aggregator, each answering its controls for itself.
    sites: list[str] = []


class TariffSpec(_Strict, frozen=True, kw_only=True):
    """A TariffProfile with one RateComponent (IEEE 2030.5 Pricing), offered through every FSA.

    Prices are in the tariff's ``currency`` (ISO 4217 numeric; 36 = AUD) × 10^``price_power_of_ten``
    per 10^``reading_power_of_ten`` Wh (the rate's ReadingType, uom 72): the defaults make ``250``
    mean 0.250 AUD per kWh. ``flow_direction`` 1 prices energy delivered to the site, 19 energy
    received from it."""

    id: str
    primacy: int = 1
    mrid: str | None = None
    rate_mrid: str | None = None
    description: str | None = None
    rate_code: str | None = None
    currency: int = 36
    price_power_of_ten: int = -3
    reading_power_of_ten: int = 3
    flow_direction: int = 1


class PriceBlockSpec(_Strict, frozen=True, kw_only=True):
    """A ConsumptionTariffInterval: ``price`` from ``start_value`` of consumption in the interval."""

    start_value: int = 0
    price: int


class ServerSettings(_Strict, frozen=True, kw_only=True):
    #: The utility clock's reading at the scenario start (``SimClock.for_scenario``), for
    #: reproducible runs; ``None``: real time at start.
    epoch: int | None = None
    #: The Registration PIN (§2.4) of an EndDevice an installer registered out of band, and of one
    #: the device registered in-band unless ``in_band_pin`` says otherwise.
    pin: int = 111115
    #: The PIN this server chooses for a device that registers itself in-band (``None``: ``pin``).
    in_band_pin: int | None = None
    #: An installer registered the device out of band before the start (with ``pin``): its
    #: EndDevice is in the list from the device's first request, no POST needed.
    pre_registered: bool = False
    #: Offer a RegistrationLink on each EndDevice (``false``: none, §2.4).
    registration_link: bool = True
    poll_rate_s: int = 60
    post_rate_s: int = 60
    tz_offset_s: int = 0
    dst_offset_s: int = 0
    time_quality: int = 4
    register_in_band: bool = True
    #: Advertise a CSIP-AUS ConnectionPoint link on each EndDevice.
    connection_point: bool = True
    #: The NMI the site's gateway is configured with (a world's ``[site] nmi``; PROTOCOL.md §2
    #: step 5 PUTs it as the ConnectionPoint); ``None``: none configured, nothing PUT.
    nmi: str | None = None
    response_required: int = 3  # default responseRequired of created controls (bits 0 and 1)
    #: Who may subscribe (``sep2gw.simserver.families.subscriptions``): ``"aggregator"`` (as the
    #: public servers: only the certificates in ``aggregators``), ``"all"`` (any registered
    #: device) or ``"none"`` (no SubscriptionListLink, every POST refused).
    subscriptions: Literal["aggregator", "all", "none"] = "aggregator"
    #: Aggregator certificate LFDIs (40 hex digits): each may POST EndDevices with other LFDIs,
    #: lists only those it registered and acts for them (a fleet world adds its own), and they are
    #: the certificates that may subscribe under ``subscriptions = "aggregator"``.
    aggregators: list[str] = []
    #: Who sees the EndDevice's SubscriptionListLink (and ``subscribable`` 1): ``"subscribers"``
    #: (the certificates that may subscribe) or ``"everyone"`` (as envoy: a device certificate sees
    #: it too, and its POST is refused 403).
    subscription_link: Literal["subscribers", "everyone"] = "subscribers"
    #: The largest Subscription ``limit`` the server accepts (list items per notification).
    subscription_limit_max: int = 100
    #: Subscriptions one EndDevice may hold; a POST beyond is refused.
    subscriptions_per_device: int = 16
    #: The origin the server names its own resources under in a Notification's
    #: ``subscriptionURI`` (the schema wants an absolute URI there).
    base_url: str = "https://utility.sim"
    #: How many DER the EndDevice's DERList holds (issue 19 point 2); ``None``: one per battery
    #: of the simulated site (``battery`` and each of ``batteries``).
    ders: int | None = None


class GatewaySettings(_Strict, frozen=True, kw_only=True):
    """The simulated gateway's own configuration where a scenario needs it to differ.

    ``pin``: its configured registration PIN: ``"server"`` (default) the server's ``pin``, a number,
    or ``"unset"`` (not configured, §2.4)."""

    pin: int | Literal["server", "unset"] = "server"
    #: ``server.csipaus_versions``: the CSIP-AUS versions the gateway may speak (empty: every
    #: version its profile allows).
    csipaus_versions: list[str] = []

    def configured_pin(self, server: ServerSettings) -> int | None:
        if self.pin == "server":
            return server.pin
        if self.pin == "unset":
            return None
        return self.pin


class BatterySettings(_Strict, frozen=True, kw_only=True):
    """The simulated battery where a scenario needs it to differ from ``sep2gw.sim.BatteryParams``'
    defaults: its usable energy and state of charge, so a storage scenario can run it full or empty
    in minutes instead of hours (``None``: the default)."""

    capacity_wh: float | None = None
    initial_soc_pct: float | None = None
    soc_min_pct: float | None = None
    soc_max_pct: float | None = None

    def overrides(self) -> dict[str, float]:
        """The fields this sets, by ``BatteryParams`` field name."""
        return {
            name: value
            for name in self.__struct_fields__
            if (value := getattr(self, name)) is not None
        }


def _check_battery(battery: BatterySettings, problems: list[str], key: str = "battery") -> None:
    values = battery.overrides()
    for name, value in values.items():
        if not math.isfinite(value) or value < 0:
            problems.append(f"{key}.{name}: must be a finite number ≥ 0, got {value}")
            return
    if "capacity_wh" in values and values["capacity_wh"] <= 0:
        problems.append(f"{key}.capacity_wh: must be positive, got {values['capacity_wh']}")
    # the defaults of sep2gw.sim.BatteryParams where the scenario sets none
    low = values.get("soc_min_pct", 5.0)
    initial = values.get("initial_soc_pct", 50.0)
    high = values.get("soc_max_pct", 100.0)
    if not 0 <= low <= initial <= high <= 100:
        problems.append(
            f"{key}: needs 0 ≤ soc_min_pct ({low:g}) ≤ initial_soc_pct ({initial:g}) ≤ "
            f"soc_max_pct ({high:g}) ≤ 100"
        )


class CreateControl(_Strict, frozen=True, kw_only=True, tag_field="kind", tag="create_control"):
    at_s: float
    program: str
    start_s: float
    duration_s: int
    modes: Modes
    mrid: str | None = None
    randomize_start_s: int | None = None
    randomize_duration_s: int | None = None
    response_required: int | None = None
    device_category: int | None = None
    description: str | None = None


class CreatePriceInterval(
    _Strict, frozen=True, kw_only=True, tag_field="kind", tag="create_price_interval"
):
    """Publish a TimeTariffInterval of ``tariff``'s rate: ``price`` (one block from 0) or ``blocks``."""

    at_s: float
    tariff: str
    start_s: float
    duration_s: int
    price: int | None = None
    blocks: list[PriceBlockSpec] = []
    tou_tier: int = 1
    mrid: str | None = None
    randomize_start_s: int | None = None
    randomize_duration_s: int | None = None
    response_required: int | None = None
    description: str | None = None


class CancelPriceInterval(
    _Strict, frozen=True, kw_only=True, tag_field="kind", tag="cancel_price_interval"
):
    at_s: float
    mrid: str
    randomized: bool = False  # status 3 (cancelled with randomisation) instead of 2


class CancelControl(_Strict, frozen=True, kw_only=True, tag_field="kind", tag="cancel_control"):
    at_s: float
    mrid: str
    randomized: bool = False  # status 3 (cancelled with randomisation) instead of 2


class ChangeControl(_Strict, frozen=True, kw_only=True, tag_field="kind", tag="change_control"):
    """The server rewrites a control's modes under the same mRID (a server fault, §4 rule 1)."""

    at_s: float
    mrid: str
    modes: Modes


class DeleteControl(_Strict, frozen=True, kw_only=True, tag_field="kind", tag="delete_control"):
    """The control vanishes from its lists without being cancelled (§4 rule 4: not a cancel)."""

    at_s: float
    mrid: str


class LoseMirrors(_Strict, frozen=True, kw_only=True, tag_field="kind", tag="lose_mirrors"):
    """The server forgets every MirrorUsagePoint (the client must create them again, §2 step 8)."""

    at_s: float


class ChangeDefault(_Strict, frozen=True, kw_only=True, tag_field="kind", tag="change_default"):
    at_s: float
    program: str
    modes: Modes  # empty table: the program no longer has a default
    set_grad_w: int | None = None


class SetPollRate(_Strict, frozen=True, kw_only=True, tag_field="kind", tag="set_poll_rate"):
    at_s: float
    seconds: int
    resource: PollResource = "all"


class SetPostRate(_Strict, frozen=True, kw_only=True, tag_field="kind", tag="set_post_rate"):
    at_s: float
    seconds: int


class FailRequests(_Strict, frozen=True, kw_only=True, tag_field="kind", tag="fail"):
    """Fail matching requests for ``duration_s``: answer ``status`` (with ``retry_after_s``), or
    drop the connection without an answer when ``reset``."""

    at_s: float
    duration_s: float
    status: int = 503
    reset: bool = False
    paths: list[str] = []  # path prefixes; empty: every path
    methods: list[str] = []  # empty: every method
    retry_after_s: int | None = None


class RemoveProgram(_Strict, frozen=True, kw_only=True, tag_field="kind", tag="remove_program"):
    at_s: float
    program: str


class RestoreProgram(_Strict, frozen=True, kw_only=True, tag_field="kind", tag="restore_program"):
    at_s: float
    program: str


class SetPin(_Strict, frozen=True, kw_only=True, tag_field="kind", tag="set_pin"):
    at_s: float
    pin: int


class SlowResponses(_Strict, frozen=True, kw_only=True, tag_field="kind", tag="slow"):
    """Answer matching requests ``delay_s`` late for ``duration_s`` (the server holds the request,
    then handles it: a client that gave up meanwhile may still have been heard)."""

    at_s: float
    duration_s: float
    delay_s: float
    paths: list[str] = []  # path prefixes; empty: every path
    methods: list[str] = []  # empty: every method


class TlsFail(_Strict, frozen=True, kw_only=True, tag_field="kind", tag="tls_fail"):
    """Every TLS handshake begun in the window fails: the server hangs up on the ClientHello."""

    at_s: float
    duration_s: float


class ClockSkew(_Strict, frozen=True, kw_only=True, tag_field="kind", tag="clock_skew"):
    """The utility's clock steps by ``seconds`` (positive: ahead) relative to the device's."""

    at_s: float
    seconds: float


class ModbusTimeout(_Strict, frozen=True, kw_only=True, tag_field="kind", tag="modbus_timeout"):
    """World-level: the battery's Modbus server stops answering for ``duration_s``."""

    at_s: float
    duration_s: float


class BatteryFault(_Strict, frozen=True, kw_only=True, tag_field="kind", tag="battery_fault"):
    """World-level: the battery trips for ``duration_s`` (no output, reports the fault, refuses
    control writes with Modbus exception 4)."""

    at_s: float
    duration_s: float


class OperatorCommand(_Strict, frozen=True, kw_only=True, tag_field="kind", tag="operator"):
    """World-level: an operator at the device (its display or local Modbus) sets the inverter
    ``started``/``standby``/``stopped`` (SunSpec 802 ``SetInvState``) and/or ``connect``s or
    disconnects it (``SetOp``); the gateway is not told, it sees it in the device's readings."""

    at_s: float
    inverter: Literal["started", "standby", "stopped"] | None = None
    connect: bool | None = None


class DerDisconnect(_Strict, frozen=True, kw_only=True, tag_field="kind", tag="der_disconnect"):
    """World-level (issue 19 point 2): DER number ``der`` of the site (1: ``battery``, 2 on: the
    ``batteries``) disconnects for ``duration_s``: off the AC side, and its controller stops
    answering; both come back at the end."""

    at_s: float
    duration_s: float
    der: int


class CrashGateway(_Strict, frozen=True, kw_only=True, tag_field="kind", tag="crash"):
    """World-level: the gateway dies abruptly at ``at_s`` (what its log writer had not committed
    is lost, as with SIGKILL) and starts again on the same log ``down_s`` later."""

    at_s: float
    down_s: float = 0.0


class ForgetSubscriptions(
    _Strict, frozen=True, kw_only=True, tag_field="kind", tag="forget_subscriptions"
):
    """The server restarts and loses every subscription, silently (clients learn it from a 404 on
    the subscription's href, or from notifications that no longer come)."""

    at_s: float


class CancelSubscriptions(
    _Strict, frozen=True, kw_only=True, tag_field="kind", tag="cancel_subscriptions"
):
    """The server ends every subscription (or those whose subscribedResource starts with one of
    ``resources``) with a Notification of status 1, "subscription cancelled, no additional
    information" (IEEE 2030.5 §5.4 Notification.status)."""

    at_s: float
    resources: list[str] = []


class LoseNotifications(
    _Strict, frozen=True, kw_only=True, tag_field="kind", tag="lose_notifications"
):
    """Notifications the server makes in the window are dropped before sending, each with
    ``probability`` (drawn from the world's seed)."""

    at_s: float
    duration_s: float
    probability: float = 1.0


class DuplicateNotifications(
    _Strict, frozen=True, kw_only=True, tag_field="kind", tag="duplicate_notifications"
):
    """Notifications made in the window are sent twice, each with ``probability``."""

    at_s: float
    duration_s: float
    probability: float = 1.0


class DelayNotifications(
    _Strict, frozen=True, kw_only=True, tag_field="kind", tag="delay_notifications"
):
    """Notifications made in the window leave ``delay_s`` late."""

    at_s: float
    duration_s: float
    delay_s: float


#: The notification faults (a window in which the notifier drops, repeats or delays).
NOTIFICATION_FAULTS: Final = (LoseNotifications, DuplicateNotifications, DelayNotifications)


#: The hostile server's behaviours (``sep2gw.simserver.hostile`` implements each), by fault class:
#: TLS framing, HTTP/1.1 framing, HTTP/2 framing, amplification, absurd values, header abuse,
#: redirect games and a slow peer (issue 15 point 6); absurd values include pollRate/postRate outside
#: any sane window (issue 15 point 1).
HostileName = Literal[
    "tls_garbage_after_handshake",
    "tls_close_mid_handshake",
    "http_bad_status_line",
    "http_truncated_body",
    "http_huge_header",
    "http_oversized_content_length",
    "http_endless_chunked",
    "h2_ignore_flow_control",
    "h2_endless_continuation",
    "xml_entity_bomb",
    "xml_unique_names",
    "list_all_million",
    "list_page_overflow",
    "list_repeating_page",
    "control_negative_limits",
    "control_fixed_w_327",
    "control_max_lim_655",
    "time_int64_max",
    "time_int64_min",
    "time_1970",
    "time_2100",
    "poll_rate_1s",
    "poll_rate_huge",
    "post_rate_1s",
    "retry_after_1e20",
    "retry_after_hundreds_of_digits",
    "retry_after_non_ascii",
    "redirect_to_itself",
    "redirect_other_origin",
    "slow_peer",
]
HOSTILE_BEHAVIOURS: Final[tuple[HostileName, ...]] = get_args(HostileName)


class SiteFaultSpec(_Strict, frozen=True, kw_only=True):
    """A fault of one fleet site's device (``sep2gw.fleet_world``), on the device's clock:
    ``driver_fails`` every driver call raises; ``driver_hangs`` every driver call never returns
    (the hardware actor's deadlines cut it); ``gateway_fails`` the site's driver raises an error the
    gateway does not expect on every telemetry read, so its actors fail until
    its supervisor gives up and the fleet starts the site again after a back-off."""

    site: str
    kind: Literal["driver_fails", "driver_hangs", "gateway_fails"] = "driver_fails"
    at_s: float = 0.0
    duration_s: float = 60.0


class FleetSettings(_Strict, frozen=True, kw_only=True):
    """A fleet world (``sep2gw.fleet_world``, aggregator mode): ``sites`` how many sites run by
    default (0: not a fleet scenario; ``sep2gw sim --sites N`` overrides), named ``site-000``,
    ``site-001``, …; ``own_certificate`` the sites that talk on a device certificate of their own
    instead of the aggregator's; ``faults`` per-site device faults. A program's ``sites`` names
    the sites it is assigned to. ``notifications``: the fleet subscribes for every site (each
    site's notificationURI ``https://fleet.sim/notify/<site>``) and runs one listener for them all
    (decision 0022g); off by default, so fleet worlds without it poll only, as before."""

    sites: int = 0
    own_certificate: list[str] = []
    faults: list[SiteFaultSpec] = []
    notifications: bool = False


class HostileWindow(_Strict, frozen=True, kw_only=True):
    """The server injects ``behaviour`` from ``at_s`` for ``duration_s`` (server seconds from the
    scenario start); outside every window it is the normal simulated utility."""

    behaviour: HostileName
    at_s: float = 0.0
    duration_s: float


Action = (
    CreateControl
    | CancelControl
    | ChangeControl
    | DeleteControl
    | LoseMirrors
    | ChangeDefault
    | SetPollRate
    | SetPostRate
    | FailRequests
    | RemoveProgram
    | RestoreProgram
    | SetPin
    | SlowResponses
    | TlsFail
    | ClockSkew
    | ModbusTimeout
    | BatteryFault
    | OperatorCommand
    | CrashGateway
    | DerDisconnect
    | CreatePriceInterval
    | CancelPriceInterval
    | ForgetSubscriptions
    | CancelSubscriptions
    | LoseNotifications
    | DuplicateNotifications
    | DelayNotifications
)

#: Carried out by the simulated world (``sep2gw.world``), not the utility server: its state model
#: ignores them.
WORLD_FAULTS: Final = (ModbusTimeout, BatteryFault, OperatorCommand, CrashGateway, DerDisconnect)


class Scenario(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    name: str = "scenario"
    server: ServerSettings = ServerSettings()
    gateway: GatewaySettings = GatewaySettings()
    #: The simulated battery's capacity and state of charge (``sep2gw.world``).
    battery: BatterySettings = BatterySettings()
    #: More batteries behind the same site meter (issue 19 point 2): the gateway then lists the
    #: site's DER as ``[[ders]]`` (``battery``, ``battery-2``, …) and drives them as one site.
    batteries: list[BatterySettings] = []
    quirks: Quirks = Quirks()
    programs: list[ProgramSpec] = []
    #: Tariffs the server offers (IEEE 2030.5 Pricing); none: the FSAs carry no TariffProfileListLink.
    tariffs: list[TariffSpec] = []
    actions: list[Action] = []
    #: Outcomes the protocol demands (``sep2gw.simserver.expectations``), checked after a world.
    expect: Expect | None = None
    #: Windows in which the server turns hostile (``sep2gw.simserver.hostile``).
    hostile: list[HostileWindow] = []
    #: A fleet of sites under one aggregator certificate (``sep2gw.fleet_world``).
    fleet: FleetSettings = FleetSettings()

    def duration_s(self) -> float:
        """Seconds from the scenario start to its last action or the end of its last control.

        Offsets are on the server's clock: a ``clock_skew`` step back by S seconds makes every
        later offset come S seconds later on the world's own clock, so those are added."""
        ends = [0.0]
        for action in self.actions:
            ends.append(action.at_s)
            if isinstance(action, CreateControl | CreatePriceInterval):
                ends.append(action.start_s + action.duration_s)
            elif isinstance(
                action,
                FailRequests
                | SlowResponses
                | TlsFail
                | ModbusTimeout
                | BatteryFault
                | LoseNotifications
                | DuplicateNotifications
                | DelayNotifications
                | DerDisconnect,
            ):
                ends.append(action.at_s + action.duration_s)
            elif isinstance(action, CrashGateway):
                ends.append(action.at_s + action.down_s)
        ends.extend(w.at_s + w.duration_s for w in self.hostile)
        back = sum(-a.seconds for a in self.actions if isinstance(a, ClockSkew) and a.seconds < 0)
        return max(ends) + back

    def timeline(self) -> list[tuple[int, Action]]:
        """Actions by ``at_s``, file order kept among equal offsets (index first, for sorting)."""
        ordered = sorted(enumerate(self.actions), key=lambda item: (item[1].at_s, item[0]))
        return ordered


def load_scenario(path: str | Path) -> Scenario:
    source = Path(path)
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise ScenarioError(str(source), [f"cannot read the file: {exc.strerror or exc}"]) from None
    return parse_scenario(data, source=str(source))


def parse_scenario(data: bytes | str, *, source: str = "scenario") -> Scenario:
    """Decode and check a scenario; raises :class:`ScenarioError` naming every problem found."""
    try:
        scenario = decode_toml(data, Scenario)
    except TomlProblem as exc:
        raise ScenarioError(source, [str(exc)]) from None
    problems = check_scenario(scenario)
    if problems:
        raise ScenarioError(source, problems)
    return scenario


_LFDI = re.compile(r"[0-9A-Fa-f]{40}")
#: Fleet worlds name their sites ``site-000``, ``site-001``, … (``sep2gw.fleet_world``).
_SITE = re.compile(r"site-[0-9]{3,6}")


def _check_hex(key: str, text: str | None, problems: list[str]) -> None:
    if text is not None and not _HEX.fullmatch(text):
        problems.append(f"{key}: {text!r} is not an mRID (1 to 32 hex digits)")


_WATT_MODES = frozenset(
    {
        "opModExpLimW",
        "opModImpLimW",
        "opModGenLimW",
        "opModLoadLimW",
        "opModTargetW",
        "opModStorageTargetW",
    }
)


def _check_modes(key: str, modes: Modes, problems: list[str]) -> None:
    for name in ("opModExpLimW", "opModImpLimW", "opModGenLimW", "opModLoadLimW"):
        value = getattr(modes, name)
        if value is not None and value < 0:
            problems.append(f"{key}.{name}: a limit is not negative, got {value}")
    for name in modes.__struct_fields__:
        value = getattr(modes, name)
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{key}.{name}: must be a finite number, got {value}")
        elif isinstance(value, float) and name in _WATT_MODES:
            try:
                scaled(value)
            except ValueError:
                problems.append(f"{key}.{name}: {value} does not fit the wire's value x 10^n")
    for name in ("opModMaxLimW",):
        value = getattr(modes, name)
        if value is not None and not 0 <= value <= 655.35:
            problems.append(f"{key}.{name}: {value} is not a percentage in 0..655.35")
    if modes.opModFixedW is not None and not -100 <= modes.opModFixedW <= 100:
        problems.append(f"{key}.opModFixedW: {modes.opModFixedW} is not a percentage in -100..100")
    if modes.rampTms is not None and not 0 <= modes.rampTms <= 655.35:
        problems.append(f"{key}.rampTms: {modes.rampTms} s is outside 0..655.35 s")


#: The CSIP-AUS extension elements a control's modes may name.
_EXTENSION_MODES: Final = frozenset(m[0] for m in TYPES["DERControlBase"][1] if m[1] == "csipaus")


def _check_namespace(scenario: Scenario, problems: list[str]) -> None:
    """PROTOCOL.md §5: the server writes only the elements its CSIP-AUS namespace defines, so a
    mode from another version (``opModStorageTargetW`` is v1.3 storage's) cannot be served."""
    ns = scenario.quirks.csipaus_ns
    keyed: list[tuple[str, Modes]] = [
        (f"programs[{i}].default", p.default)
        for i, p in enumerate(scenario.programs)
        if p.default is not None
    ]
    for i, action in enumerate(scenario.actions):
        modes = getattr(action, "modes", None)
        if isinstance(modes, Modes):
            keyed.append((f"actions[{i}].modes", modes))
    for key, modes in keyed:
        for name in _EXTENSION_MODES:
            if getattr(modes, name, None) is not None and not csipaus_defines(ns, name):
                problems.append(
                    f"{key}.{name}: not an element of the CSIP-AUS namespace {ns} this server "
                    "serves (quirks.csipaus_ns)"
                )


def _check_grad(key: str, value: int | None, problems: list[str]) -> None:
    if value is not None and not 0 <= value <= 0xFFFF:
        problems.append(f"{key}: {value} is not 0..65535 (hundredths of a percent per second)")


_VERB: dict[type[Action], str] = {
    CancelControl: "cancelled",
    ChangeControl: "changed",
    DeleteControl: "deleted",
}


def _check_window(key: str, duration_s: float, problems: list[str]) -> None:
    if not (math.isfinite(duration_s) and duration_s > 0):
        problems.append(f"{key}.duration_s: must be positive, got {duration_s}")


def _check_pricing(scenario: Scenario, problems: list[str]) -> None:
    """Tariffs and price intervals: ids that resolve, schema ranges (UInt8 primacy, UInt16
    currency, Int8 multipliers, Int32 prices, UInt48 block starts), mRIDs created once."""
    tariffs: set[str] = set()
    for i, tariff in enumerate(scenario.tariffs):
        key = f"tariffs[{i}]"
        if tariff.id in tariffs:
            problems.append(f"{key}.id: {tariff.id!r} is used by another tariff")
        tariffs.add(tariff.id)
        if not 0 <= tariff.primacy <= 255:
            problems.append(f"{key}.primacy: {tariff.primacy} is not 0..255")
        if not 0 <= tariff.currency <= 0xFFFF:
            problems.append(f"{key}.currency: {tariff.currency} is not an ISO 4217 number")
        for name in ("price_power_of_ten", "reading_power_of_ten"):
            if not -128 <= getattr(tariff, name) <= 127:
                problems.append(f"{key}.{name}: {getattr(tariff, name)} is outside the Int8 range")
        if tariff.flow_direction not in (1, 19):
            problems.append(f"{key}.flow_direction: {tariff.flow_direction} is not 1 or 19")
        _check_hex(f"{key}.mrid", tariff.mrid, problems)
        _check_hex(f"{key}.rate_mrid", tariff.rate_mrid, problems)
    created: dict[int, float] = {}
    for i, action in enumerate(scenario.actions):
        key = f"actions[{i}]"
        if isinstance(action, CreatePriceInterval):
            if action.tariff not in tariffs:
                problems.append(f"{key}.tariff: no tariff has id {action.tariff!r}")
            if not 0 < action.duration_s <= 0xFFFFFFFF:
                problems.append(f"{key}.duration_s: must be positive, got {action.duration_s}")
            if (action.price is None) == (not action.blocks):
                problems.append(f"{key}: give either price or blocks")
            prices = (
                [action.price] if action.price is not None else [b.price for b in action.blocks]
            )
            for price in prices:
                if not -(1 << 31) <= price < 1 << 31:
                    problems.append(f"{key}: price {price} is outside the Int32 range")
            for j, block in enumerate(action.blocks):
                if not 0 <= block.start_value < 1 << 48:
                    problems.append(
                        f"{key}.blocks[{j}].start_value: {block.start_value} is not UInt48"
                    )
            if not 0 <= action.tou_tier <= 255:
                problems.append(f"{key}.tou_tier: {action.tou_tier} is not 0..255")
            _check_hex(f"{key}.mrid", action.mrid, problems)
            if action.mrid is not None and _HEX.fullmatch(action.mrid):
                value = int(action.mrid, 16)
                if value in created:
                    problems.append(f"{key}.mrid: {action.mrid} is created twice")
                created.setdefault(value, action.at_s)
        elif isinstance(action, CancelPriceInterval):
            _check_hex(f"{key}.mrid", action.mrid, problems)
            if _HEX.fullmatch(action.mrid):
                when = created.get(int(action.mrid, 16))
                if when is None or when > action.at_s:
                    problems.append(
                        f"{key}.mrid: no create_price_interval creates {action.mrid} before "
                        f"{action.at_s:g} s"
                    )


def _check_subscription_settings(server: ServerSettings, problems: list[str]) -> None:
    if not 0 <= server.subscription_limit_max <= 0xFFFFFFFF:
        problems.append(
            f"server.subscription_limit_max: {server.subscription_limit_max} is not a UInt32"
        )
    if not 1 <= server.subscriptions_per_device <= 10_000:
        problems.append(
            f"server.subscriptions_per_device: {server.subscriptions_per_device} is not 1..10000"
        )
    if not re.fullmatch(r"https://[^/?#\s]+", server.base_url):
        problems.append(
            f"server.base_url: {server.base_url!r} is not an https origin (https://host[:port])"
        )


def check_scenario(scenario: Scenario) -> list[str]:
    """Cross-references and ranges msgspec's types cannot express."""
    problems: list[str] = []
    server = scenario.server
    if not 0 <= server.pin <= 999_999:
        problems.append(f"server.pin: {server.pin} is not a PIN (5 digits and a check digit)")
    if server.in_band_pin is not None and not 0 <= server.in_band_pin <= 999_999:
        problems.append(
            f"server.in_band_pin: {server.in_band_pin} is not a PIN (5 digits and a check digit)"
        )
    gateway_pin = scenario.gateway.pin
    if isinstance(gateway_pin, int) and not 0 <= gateway_pin <= 999_999:
        problems.append(f"gateway.pin: {gateway_pin} is not a PIN (5 digits and a check digit)")
    for key, value in (("poll_rate_s", server.poll_rate_s), ("post_rate_s", server.post_rate_s)):
        if not 1 <= value <= 0xFFFFFFFF:
            problems.append(f"server.{key}: must be a positive number of seconds, got {value}")
    if server.nmi is not None and not _NMI.fullmatch(server.nmi):
        problems.append(f"server.nmi: {server.nmi!r} is not a 10 or 11 character NMI")
    if not 0 <= server.response_required <= 255:
        problems.append(f"server.response_required: {server.response_required} is not 0..255")
    for i, lfdi in enumerate(server.aggregators):
        if not _LFDI.fullmatch(lfdi):
            problems.append(f"server.aggregators[{i}]: {lfdi!r} is not an LFDI (40 hex digits)")
    if not 3 <= server.time_quality <= 7:
        problems.append(f"server.time_quality: {server.time_quality} is not a Time quality (3..7)")
    for key, value in (("tz_offset_s", server.tz_offset_s), ("dst_offset_s", server.dst_offset_s)):
        if not -86400 <= value <= 86400:
            problems.append(f"server.{key}: {value} s is more than a day")
    _check_subscription_settings(server, problems)
    _check_battery(scenario.battery, problems)
    for i, extra in enumerate(scenario.batteries):
        _check_battery(extra, problems, key=f"batteries[{i}]")
    if server.ders is not None and not 1 <= server.ders <= 64:
        problems.append(f"server.ders: {server.ders} is not 1..64 DER")
    fleet = scenario.fleet
    if not 0 <= fleet.sites <= 100_000:
        problems.append(f"fleet.sites: {fleet.sites} is not 0..100000")
    for i, name in enumerate(fleet.own_certificate):
        if not _SITE.fullmatch(name):
            problems.append(f"fleet.own_certificate[{i}]: {name!r} is not a site name (site-NNN)")
    for i, fault in enumerate(fleet.faults):
        if not _SITE.fullmatch(fault.site):
            problems.append(f"fleet.faults[{i}].site: {fault.site!r} is not a site name (site-NNN)")
        if fault.duration_s <= 0 or fault.at_s < 0:
            problems.append(f"fleet.faults[{i}]: at_s must be ≥ 0 and duration_s > 0")
    for i, program in enumerate(scenario.programs):
        for j, name in enumerate(program.sites):
            if not _SITE.fullmatch(name):
                problems.append(f"programs[{i}].sites[{j}]: {name!r} is not a site name (site-NNN)")
    problems.extend(scenario.quirks.problems())
    if not scenario.quirks.problems():
        _check_namespace(scenario, problems)
    ids: set[str] = set()
    for i, program in enumerate(scenario.programs):
        key = f"programs[{i}]"
        if program.id in ids:
            problems.append(f"{key}.id: {program.id!r} is used by another program")
        ids.add(program.id)
        if not 0 <= program.primacy <= 255:
            problems.append(f"{key}.primacy: {program.primacy} is not 0..255")
        _check_hex(f"{key}.mrid", program.mrid, problems)
        if program.default is not None:
            _check_modes(f"{key}.default", program.default, problems)
        _check_grad(f"{key}.set_grad_w", program.set_grad_w, problems)
    _check_pricing(scenario, problems)
    for i, window in enumerate(scenario.hostile):
        if not (math.isfinite(window.at_s) and window.at_s >= 0):
            problems.append(f"hostile[{i}].at_s: must not be negative, got {window.at_s}")
        _check_window(f"hostile[{i}]", window.duration_s, problems)
    created: dict[int, float] = {}  # mRID -> at_s of its create_control
    for action in scenario.actions:
        if isinstance(action, CreateControl) and action.mrid and _HEX.fullmatch(action.mrid):
            created.setdefault(int(action.mrid, 16), action.at_s)
    mrids: set[int] = set()
    for i, action in enumerate(scenario.actions):
        key = f"actions[{i}]"
        if action.at_s < 0:
            problems.append(f"{key}.at_s: must not be negative, got {action.at_s}")
        if isinstance(action, CreateControl | ChangeDefault | RemoveProgram | RestoreProgram):
            if action.program not in ids:
                problems.append(f"{key}.program: no program has id {action.program!r}")
        if isinstance(action, CreateControl):
            _check_hex(f"{key}.mrid", action.mrid, problems)
            if action.mrid is not None and _HEX.fullmatch(action.mrid):
                value = int(action.mrid, 16)
                if value in mrids:
                    problems.append(f"{key}.mrid: {action.mrid} is created twice")
                mrids.add(value)
            if not 0 < action.duration_s <= 0xFFFFFFFF:
                problems.append(f"{key}.duration_s: must be positive, got {action.duration_s}")
            if action.modes.is_empty():
                problems.append(f"{key}.modes: a control sets at least one mode")
            _check_modes(f"{key}.modes", action.modes, problems)
            if action.response_required is not None and not 0 <= action.response_required <= 255:
                problems.append(
                    f"{key}.response_required: {action.response_required} is not 0..255"
                )
            if action.device_category is not None and not 0 <= action.device_category < 1 << 32:
                problems.append(f"{key}.device_category: {action.device_category} is not 32 bits")
            for name in ("randomize_start_s", "randomize_duration_s"):
                value = getattr(action, name)
                if value is not None and not -32768 <= value <= 32767:
                    problems.append(f"{key}.{name}: {value} is outside the Int16 range")
        elif isinstance(action, CancelControl | ChangeControl | DeleteControl):
            _check_hex(f"{key}.mrid", action.mrid, problems)
            if isinstance(action, ChangeControl):
                if action.modes.is_empty():
                    problems.append(f"{key}.modes: a control sets at least one mode")
                _check_modes(f"{key}.modes", action.modes, problems)
            if _HEX.fullmatch(action.mrid):
                when = created.get(int(action.mrid, 16))
                if when is None:
                    problems.append(f"{key}.mrid: no create_control action creates {action.mrid}")
                elif when > action.at_s:
                    problems.append(
                        f"{key}.mrid: {action.mrid} is {_VERB[type(action)]} at {action.at_s:g} s, "
                        f"before it is created at {when:g} s"
                    )
        elif isinstance(action, ChangeDefault):
            _check_modes(f"{key}.modes", action.modes, problems)
            _check_grad(f"{key}.set_grad_w", action.set_grad_w, problems)
        elif isinstance(action, SetPollRate | SetPostRate):
            if not 1 <= action.seconds <= 0xFFFFFFFF:
                problems.append(f"{key}.seconds: must be positive, got {action.seconds}")
        elif isinstance(action, FailRequests):
            if action.duration_s <= 0:
                problems.append(f"{key}.duration_s: must be positive, got {action.duration_s}")
            if not action.reset and not 400 <= action.status <= 599:
                problems.append(f"{key}.status: {action.status} is not an HTTP error status")
            for j, prefix in enumerate(action.paths):
                if not prefix.startswith("/"):
                    problems.append(f"{key}.paths[{j}]: {prefix!r} must start with '/'")
        elif isinstance(action, SlowResponses):
            _check_window(key, action.duration_s, problems)
            if not (math.isfinite(action.delay_s) and 0 < action.delay_s <= 3600):
                problems.append(f"{key}.delay_s: must be in (0, 3600] s, got {action.delay_s}")
            for j, prefix in enumerate(action.paths):
                if not prefix.startswith("/"):
                    problems.append(f"{key}.paths[{j}]: {prefix!r} must start with '/'")
        elif isinstance(action, TlsFail | ModbusTimeout | BatteryFault):
            _check_window(key, action.duration_s, problems)
        elif isinstance(action, ClockSkew):
            if not math.isfinite(action.seconds) or action.seconds == 0:
                problems.append(
                    f"{key}.seconds: must be a non-zero finite step, got {action.seconds}"
                )
            elif abs(action.seconds) > 86400 * 365:
                problems.append(f"{key}.seconds: {action.seconds:g} s is more than a year")
        elif isinstance(action, CrashGateway):
            if not (math.isfinite(action.down_s) and 0 <= action.down_s <= 86400 * 7):
                problems.append(f"{key}.down_s: must be 0 .. 604800 s, got {action.down_s}")
        elif isinstance(action, DerDisconnect):
            count = 1 + len(scenario.batteries)
            if not 1 <= action.der <= count:
                problems.append(f"{key}.der: {action.der} is not a DER of the site (1..{count})")
            if not (math.isfinite(action.duration_s) and action.duration_s > 0):
                problems.append(f"{key}.duration_s: must be positive, got {action.duration_s}")
        elif isinstance(action, OperatorCommand):
            if action.inverter is None and action.connect is None:
                problems.append(f"{key}: an operator command sets inverter or connect (or both)")
        elif isinstance(action, LoseNotifications | DuplicateNotifications):
            _check_window(key, action.duration_s, problems)
            if not 0 <= action.probability <= 1:
                problems.append(f"{key}.probability: {action.probability} is not in [0, 1]")
        elif isinstance(action, DelayNotifications):
            _check_window(key, action.duration_s, problems)
            if not (math.isfinite(action.delay_s) and 0 < action.delay_s <= 3600):
                problems.append(f"{key}.delay_s: must be in (0, 3600] s, got {action.delay_s}")
        elif isinstance(action, CancelSubscriptions):
            for j, prefix in enumerate(action.resources):
                if not prefix.startswith("/"):
                    problems.append(f"{key}.resources[{j}]: {prefix!r} must start with '/'")
        elif isinstance(action, SetPin) and not 0 <= action.pin <= 999_999:
            problems.append(f"{key}.pin: {action.pin} is not a PIN (5 digits and a check digit)")
    if scenario.expect is not None:
        for action in scenario.actions:
            if (
                isinstance(action, CreatePriceInterval)
                and action.mrid
                and _HEX.fullmatch(action.mrid)
            ):
                created.setdefault(int(action.mrid, 16), action.at_s)
        problems.extend(check_expect(scenario.expect, set(created), CATALOGUE.tags))
        tariff_ids = {t.id for t in scenario.tariffs}
        for i, price_at in enumerate(scenario.expect.prices):
            if price_at.tariff is not None and price_at.tariff not in tariff_ids:
                problems.append(f"expect.prices[{i}].tariff: no tariff has id {price_at.tariff!r}")
            elif price_at.tariff is None and len(tariff_ids) > 1:
                problems.append(
                    f"expect.prices[{i}].tariff: name the tariff (the scenario has several)"
                )
    return problems


_DEMO = """
name = "demo"

[server]
pin = 111115
poll_rate_s = 10
post_rate_s = 60

[[programs]]
id = "network"
primacy = 10
description = "network limits"

[[programs]]
id = "retailer"
primacy = 20
description = "retailer dispatch"
default = { opModExpLimW = 5000, opModImpLimW = 5000 }

# A normal control: export limited to 1.5 kW for two minutes.
[[actions]]
at_s = 0
kind = "create_control"
mrid = "DE0000000000000000000000000000A1"
program = "retailer"
start_s = 30
duration_s = 120
modes = { opModExpLimW = 1500 }

# A retailer discharge request, superseded by the network's higher-primacy control below.
[[actions]]
at_s = 0
kind = "create_control"
mrid = "DE0000000000000000000000000000A2"
program = "retailer"
start_s = 180
duration_s = 120
modes = { opModTargetW = 3000 }

[[actions]]
at_s = 90
kind = "create_control"
mrid = "DE0000000000000000000000000000B1"
program = "network"
start_s = 200
duration_s = 90
modes = { opModTargetW = 0, opModExpLimW = 0 }

# A control announced, then cancelled by the utility while it runs.
[[actions]]
at_s = 120
kind = "create_control"
mrid = "DE0000000000000000000000000000A3"
program = "retailer"
start_s = 330
duration_s = 120
modes = { opModImpLimW = 1000 }

[[actions]]
at_s = 360
kind = "cancel_control"
mrid = "DE0000000000000000000000000000A3"
"""


def under_version(scenario: Scenario, version: str) -> Scenario:
    """``scenario`` with its server speaking CSIP-AUS ``version`` (``v1.2``, ``v1.3-beta/storage``,
    ``v1.3``; issue 18 point 1: every scenario runs under each). A v1.3 server offers service
    discovery (``/.well-known/csipaus``), as v1.3 servers do; the others keep the scenario's
    ``well_known``. Raises :class:`ScenarioError` when the scenario cannot be served in it (a
    control naming an element that version does not define)."""
    try:
        chosen = version_by_name(version)
    except KeyError as exc:
        raise ScenarioError(scenario.name, [f"csipaus version: {exc.args[0]}"]) from None
    well_known = "offer" if chosen.name == "v1.3" else scenario.quirks.well_known
    quirks = msgspec.structs.replace(
        scenario.quirks, csipaus_ns=chosen.namespace, well_known=well_known
    )
    served = msgspec.structs.replace(scenario, quirks=quirks)
    problems: list[str] = []
    _check_namespace(served, problems)
    if problems:
        raise ScenarioError(f"{scenario.name} under {version}", problems)
    return served


def demo_scenario() -> Scenario:
    """The built-in demo (about eight minutes): a normal control, one superseded by a
    higher-primacy program's control, and one cancelled while active (``sep2gw run``'s default)."""
    return parse_scenario(_DEMO, source="demo scenario")

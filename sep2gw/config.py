"""Gateway configuration: one TOML file, validated with errors that name the key and the problem.

Relative paths in the file are relative to the file's own directory, so a site's configuration
folder can be moved as a whole. ``server.pin`` is the registration PIN an installer registered the
device with (5 digits and the check digit, checked here); leave it out when there is none: the
server's PIN is then recorded with a warning instead of compared (PROTOCOL.md §2.4). A minimal
file::

    [server]
    url = "https://derms.example.net:8443"
    dcap_path = "/dcap"
    pin = 111115
    profile = "csip-aus"

    [tls]
    certificate = "certs/device-chain.pem"
    key = "certs/device.key"
    ca = "certs/serca.pem"

    [battery]
    driver = "sunspec"
    host = "192.0.2.10"

    [log]
    path = "site.sep2gw"
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit

import msgspec

from sep2gw.humanfmt import BadZone, parse_zone
from sep2gw.profiles import profile_named
from sep2gw.tomlfile import TomlProblem, decode_toml
from transport.identity import check_digit, verify_pin

__all__ = [
    "BatteryConfig",
    "Config",
    "ConfigError",
    "DerConfig",
    "LogConfig",
    "LoggingConfig",
    "MetricsConfig",
    "NotificationsConfig",
    "RatesConfig",
    "ServerConfig",
    "SiteConfig",
    "TlsConfig",
    "der_keys",
    "is_loopback",
    "parse_listen",
    "load_config",
    "parse_config",
]

#: The canonical names (``sep2gw.profiles``), then ``"2018"``: the old name of ``"2030.5"``,
#: accepted with a warning.
Profile = Literal["2030.5", "csip", "csip-aus", "sapn", "2018"]


class ConfigError(ValueError):
    """Everything wrong with one configuration file, each problem naming its key."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


def _key(meaning: str, *, kind: str | None = None) -> msgspec.Meta:
    """A key's documentation, which the configuration reference (docs/configuration.md) is
    generated from (``scripts/gen_config_reference.py``): what it means and, where the Python type
    says too little (a path, a port, a range checked below), how a user should read its type."""
    return msgspec.Meta(description=meaning, extra={} if kind is None else {"kind": kind})


class _Section(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Unknown keys are errors: a misspelt key silently ignored is how a site runs on defaults."""


class ServerConfig(_Section, frozen=True, kw_only=True):
    url: Annotated[
        str, _key("`https://host[:port]` of the server; 2030.5 requires TLS", kind="URL")
    ]
    dcap_path: Annotated[str, _key("path of the DeviceCapability resource; starts with `/`")] = (
        "/dcap"
    )
    pin: Annotated[
        int | None,
        _key(
            "the registration PIN as the utility issues it: 5 digits and a check digit "
            "(`111115`); compared with the server's Registration.pIN. Leave it out when there is "
            "none: the server's PIN is then recorded with a warning instead of compared",
            kind="6-digit integer",
        ),
    ] = None
    profile: Annotated[
        Profile,
        _key(
            "which profile's identity and Response rules apply (the names `--profile` takes "
            'too); `"2018"`, the old name of `"2030.5"`, is still accepted with a warning'
        ),
    ] = "csip-aus"
    http2: Annotated[bool, _key("offer HTTP/2 by ALPN (HTTP/1.1 is always offered)")] = True
    register_in_band: Annotated[
        bool, _key("create the EndDevice by POST when the server does not know it")
    ] = True
    request_timeout_s: Annotated[
        float, _key("deadline of one HTTP request (and of connecting)", kind="seconds > 0")
    ] = 30.0
    csipaus_versions: Annotated[
        tuple[str, ...],
        _key(
            "the CSIP-AUS versions this site may speak (`v1.2`, `v1.3-beta/storage`, `v1.3`), "
            "oldest first; empty: every version the profile allows",
            kind="list of version names",
        ),
    ] = ()
    well_known: Annotated[
        bool | None,
        _key(
            "try CSIP-AUS v1.3 service discovery (`/.well-known/csipaus`) before `dcap_path`; "
            "none: as the profile says (on for `csip-aus` and `sapn`)"
        ),
    ] = None


class TlsConfig(_Section, frozen=True, kw_only=True):
    certificate: Annotated[
        str,
        _key("PEM chain: the device certificate first, then its MICA/MCA", kind="path"),
    ]
    key: Annotated[
        str,
        _key(
            "PEM private key of the device certificate: ECDSA P-256; keep it `chmod 600`",
            kind="path",
        ),
    ]
    ca: Annotated[
        str, _key("PEM root(s) (the SERCA) the server's chain must verify against", kind="path")
    ]
    key_password_env: Annotated[
        str | None,
        _key(
            "name of the environment variable holding the key's password; required for an "
            "encrypted key (sep2gw never prompts)"
        ),
    ] = None
    extra_ciphers: Annotated[
        list[str],
        _key(
            "extra OpenSSL cipher suites, for test servers only (logged); 2030.5 allows only "
            "ECDHE-ECDSA-AES128-CCM8"
        ),
    ] = []


class SiteConfig(_Section, frozen=True, kw_only=True):
    nmi: Annotated[
        str | None, _key("the site's 10 or 11 character NMI (CSIP-AUS connection point)")
    ] = None
    time_zone: Annotated[
        str,
        _key(
            "the site's zone, an IANA name (`Australia/Adelaide`) or an offset (`+10:30`): the "
            "console shows local time beside server time, and `replay`/`explain`/`report`/`export "
            "--config` read and show times in it",
            kind="zone",
        ),
    ] = "UTC"
    pen: Annotated[
        int,
        _key(
            "IANA Private Enterprise Number written into the mRIDs the gateway creates "
            "(MirrorUsagePoints)",
            kind="0..2³²−1",
        ),
    ] = 0
    device_category: Annotated[
        int,
        _key(
            'DeviceCategoryType bitmap of the EndDevice; bit 25 (`33554432`) is "Other Storage '
            'System"',
            kind="bitmap",
        ),
    ] = 1 << 25


class BatteryConfig(_Section, frozen=True, kw_only=True):
    driver: Annotated[
        Literal["sunspec", "tags", "simulated"],
        _key(
            "`sep2gw run` drives `sunspec`; the others are driver objects an embedding "
            "application hands in (`Gateway(config, driver=...)`)"
        ),
    ]
    host: Annotated[
        str | None,
        _key(
            "the SunSpec Modbus TCP device (required for `sunspec`)",
            kind="IP address or host name",
        ),
    ] = None
    port: Annotated[int, _key("its TCP port", kind="1..65535")] = 502
    unit_id: Annotated[int, _key("its Modbus unit id", kind="0..255")] = 1
    timeout_s: Annotated[float, _key("deadline of one Modbus request", kind="seconds > 0")] = 3.0
    tag_map: Annotated[
        str | None, _key("the tag map of the `tags` driver (required for it)", kind="path")
    ] = None


#: A DER's name (``[[ders]]``): as a fleet's site names, safe in a file name and a metric label.
_DER_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


class DerConfig(BatteryConfig, frozen=True, kw_only=True):
    """One of several DER at the site (each a `[[ders]]` entry, in the order the utility's
    DERList is matched against unless `href` says otherwise): its name, its role, and its device
    (the keys of `[battery]`). The site's limits (CSIP-AUS: at the connection point) are shared
    among the DER that can take them, in proportion to their ratings; the site meter is read
    through the first DER that reports it."""

    name: Annotated[
        str,
        _key(
            "the DER's name in the log, the status and the metrics: lower-case letters, digits, "
            "`-` and `_`, up to 64; unique at the site",
            kind="name",
        ),
    ]
    role: Annotated[
        Literal["battery", "pv"],
        _key("what the DER is: a battery system or a PV inverter"),
    ] = "battery"
    href: Annotated[
        str | None,
        _key(
            "the href of the server's DER (in the EndDevice's DERList) this DER is reported as; "
            "none: the DERList's DER in order, after those another entry names",
            kind="path",
        ),
    ] = None


class RatesConfig(_Section, frozen=True, kw_only=True):
    default_poll_s: Annotated[
        int, _key("poll period when the server gives no pollRate", kind="seconds > 0")
    ] = 300
    default_post_s: Annotated[
        int, _key("reading post period when the server gives no postRate", kind="seconds > 0")
    ] = 300
    telemetry_sample_s: Annotated[float, _key("battery sampling period", kind="seconds > 0")] = 5.0


class LogConfig(_Section, frozen=True, kw_only=True):
    """Rotation that keeps the evidence (`sep2gw log rotate`) and how much disk a site needs are
    in [running it as a service](service.md#log-growth-and-rotation)."""

    path: Annotated[
        str,
        _key(
            "the event log (one SQLite file); its folder must exist and be writable. One gateway "
            "per log: the running one holds `<path>.lock`, and a second is refused naming it",
            kind="path",
        ),
    ] = "sep2gw.sep2gw"
    max_bytes: Annotated[
        int | None,
        _key(
            "the most the log's files may take on disk, its `-wal` and `-shm` included; none: "
            "no limit but the disk. Reaching it (or a full disk) is a degraded mode, not an exit: "
            "below a 256 KiB reserve telemetry detail is no longer recorded (counted, and the "
            "count recorded as `log.shed.v1` when space returns); control decisions are still "
            "recorded into the reserve, and wait (not acted on) if even that is gone, while the "
            "battery keeps the limits in force; an `ALARM:` line goes to standard error and a "
            "`LOG_FULL` LogEvent to the utility. It does not rotate: see `sep2gw log rotate`",
            kind="bytes ≥ 1 MiB (1048576)",
        ),
    ] = None


class LoggingConfig(_Section, frozen=True, kw_only=True):
    """Diagnostics (Python ``logging``), not the event log: ``run``'s ``--log-level``, ``-v``/``-q``,
    ``--log-file`` and ``--log-format`` win over these."""

    level: Annotated[
        Literal["debug", "info", "warning", "error", "critical"],
        _key("the least severe diagnostics written"),
    ] = "warning"
    file: Annotated[
        str | None,
        _key(
            "also write diagnostics to this file (appended to), beside standard error", kind="path"
        ),
    ] = None
    format: Annotated[
        Literal["text", "json"],
        _key("`json`: one JSON object per line (ts, level, logger, message, the log record's seq)"),
    ] = "text"


class MetricsConfig(_Section, frozen=True, kw_only=True):
    """The local ``/metrics`` (Prometheus) and ``/health`` (JSON) endpoint; off unless ``listen``."""

    listen: Annotated[
        str,
        _key(
            '`HOST:PORT` to serve `/metrics` and `/health` on, e.g. `"127.0.0.1:9108"`; empty (the '
            "default): no endpoint",
            kind="address",
        ),
    ] = ""
    allow_remote: Annotated[
        bool,
        _key(
            "serve on an address other than loopback. Anyone who reaches it reads the site's state "
            "and limits: leave it off unless a firewall or a reverse proxy guards the port"
        ),
    ] = False


class NotificationsConfig(_Section, frozen=True, kw_only=True):
    """Subscriptions and the notification listener (IEEE 2030.5 Subscription/Notification): off
    unless ``url``. Notifications make the gateway read a changed resource at once; polling at the
    server's rates carries on as the safety net."""

    url: Annotated[
        str,
        _key(
            "the notificationURI given to the server, `https://host[:port]/path` as the server "
            "reaches this gateway's listener; empty (the default): no subscriptions",
            kind="URL",
        ),
    ] = ""
    listen: Annotated[
        str,
        _key(
            "`HOST:PORT` the listener serves on (mutual TLS with the device certificate), e.g. "
            '`"0.0.0.0:8443"`; empty: no TCP listener (an embedding application hands '
            "connections to `Gateway.serve_notification_stream`)",
            kind="address",
        ),
    ] = ""
    max_connections: Annotated[
        int, _key("connections served at once; more are closed as they arrive", kind="1..1024")
    ] = 8
    max_body_bytes: Annotated[
        int, _key("the largest Notification body read (larger: 413)", kind="1 KiB..1 MiB")
    ] = 65536
    connection_timeout_s: Annotated[
        float, _key("a connection is closed this long after it arrived", kind="seconds > 0")
    ] = 30.0
    max_subscriptions: Annotated[
        int, _key("subscriptions held at most; other resources are only polled", kind="1..1000")
    ] = 32
    verify_period_s: Annotated[
        float,
        _key(
            "each subscription is checked (GET) at most this often; a 404 (the server lost it, "
            "as on a restart) subscribes again, so notifications resume within about this time",
            kind="seconds >= 60",
        ),
    ] = 300.0


class Config(_Section, frozen=True, kw_only=True):
    server: Annotated[ServerConfig, _key("the utility server")]
    tls: Annotated[TlsConfig, _key("the device identity")]
    battery: Annotated[
        BatteryConfig | None,
        _key("the device of a site with one DER; this or `[[ders]]` is required"),
    ] = None
    ders: Annotated[
        tuple[DerConfig, ...],
        _key("the DER of a site with several; this or `[battery]` is required"),
    ] = ()
    site: Annotated[SiteConfig, _key("the site")] = SiteConfig()
    rates: Annotated[RatesConfig, _key("default rates")] = RatesConfig()
    log: Annotated[LogConfig, _key("the event log")] = LogConfig()
    logging: Annotated[LoggingConfig, _key("diagnostics (Python logging)")] = LoggingConfig()
    metrics: Annotated[MetricsConfig, _key("the local metrics and health endpoint")] = (
        MetricsConfig()
    )
    notifications: Annotated[
        NotificationsConfig, _key("subscriptions and the notification listener")
    ] = NotificationsConfig()
    #: Set by the loader (the file's folder), not read from the file.
    base_dir: Annotated[str, msgspec.Meta(extra={"internal": True})] = "."

    def der_list(self) -> tuple[DerConfig, ...]:
        """The site's DER: the ``[[ders]]`` entries, or ``[battery]`` as one DER named
        ``battery`` (the file of a single-DER site means what it always meant)."""
        if self.ders or self.battery is None:
            return self.ders
        fields = msgspec.structs.asdict(self.battery)
        return (DerConfig(name="battery", **fields),)

    def path(self, relative: str) -> Path:
        """A path from the file, resolved against the file's directory."""
        candidate = Path(relative).expanduser()
        return candidate if candidate.is_absolute() else Path(self.base_dir) / candidate


_NMI = re.compile(r"[A-HJ-NP-Z0-9]{10,11}")


def load_config(path: str | Path) -> Config:
    """Read and validate a configuration file; raises ConfigError naming every problem found."""
    source = Path(path)
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise ConfigError(str(source), [f"cannot read the file: {exc.strerror or exc}"]) from None
    return parse_config(data, source=str(source), base_dir=source.resolve().parent)


def parse_config(
    data: bytes | str, *, source: str, base_dir: Path, check_files: bool = True
) -> Config:
    try:
        config = decode_toml(data, Config)
    except TomlProblem as exc:
        raise ConfigError(source, [str(exc)]) from None
    config = msgspec.structs.replace(config, base_dir=str(base_dir))
    problems = _check(config, check_files=check_files)
    if problems:
        raise ConfigError(source, problems)
    return config


def _pin_problems(pin: int) -> list[str]:
    """PROTOCOL.md §2.4/§3: a registration PIN is 5 digits and the sum-of-digits check digit
    (11111 → 111115); a wrong check digit is a mistyped PIN that would halt registration."""
    if not 0 <= pin <= 999_999:
        return [f"server.pin: {pin} is not a registration PIN (5 digits and a check digit)"]
    if not verify_pin(pin):
        five = f"{pin:06d}"[:5]
        return [
            f"server.pin: {pin:06d} has a wrong check digit: after {five} it must be "
            f"{check_digit(five)} (a mistyped PIN?)"
        ]
    return []


def _check(config: Config, *, check_files: bool) -> list[str]:
    problems: list[str] = []
    url = urlsplit(config.server.url)
    if url.scheme != "https" or not url.hostname:
        problems.append(
            f"server.url: {config.server.url!r} must be an https:// URL with a host "
            "(2030.5 requires TLS)"
        )
    if not config.server.dcap_path.startswith("/"):
        problems.append(f"server.dcap_path: {config.server.dcap_path!r} must start with '/'")
    if config.server.pin is not None:
        problems += _pin_problems(config.server.pin)
    problems += _version_problems(config.server)
    if config.server.request_timeout_s <= 0:
        problems.append("server.request_timeout_s: must be positive")
    try:
        parse_zone(config.site.time_zone, what="site.time_zone:")
    except BadZone as exc:
        problems.append(str(exc))
    if not 0 <= config.site.pen <= 0xFFFFFFFF:
        problems.append(f"site.pen: {config.site.pen} is not a Private Enterprise Number (32 bits)")
    if not 0 < config.site.device_category <= 0xFFFFFFFF:
        problems.append(
            f"site.device_category: {config.site.device_category} is not a DeviceCategoryType bitmap"
        )
    if config.site.nmi is not None and not _NMI.fullmatch(config.site.nmi):
        problems.append(f"site.nmi: {config.site.nmi!r} is not a 10 or 11 character NMI")
    problems += _der_problems(config)
    rates = config.rates
    for key, value in (
        ("default_poll_s", rates.default_poll_s),
        ("default_post_s", rates.default_post_s),
        ("telemetry_sample_s", rates.telemetry_sample_s),
    ):
        if value <= 0:
            problems.append(f"rates.{key}: must be positive, got {value}")
    if config.log.max_bytes is not None and config.log.max_bytes < 1 << 20:
        problems.append("log.max_bytes: at least 1 MiB, or leave it out for no limit")
    problems += metrics_problems(config.metrics)
    problems += notifications_problems(config.notifications)
    if check_files:
        files = [
            ("tls.certificate", config.tls.certificate),
            ("tls.key", config.tls.key),
            ("tls.ca", config.tls.ca),
        ]
        for key, der in der_keys(config):
            if der.tag_map:
                files.append((f"{key}.tag_map", der.tag_map))
        for key, relative in files:
            resolved = config.path(relative)
            if not resolved.is_file():
                problems.append(f"{key}: {resolved} does not exist or is not a file")
        log_dir = config.path(config.log.path).parent
        if not log_dir.is_dir():
            problems.append(f"log.path: the folder {log_dir} does not exist")
        if config.logging.file is not None:
            folder = config.path(config.logging.file).parent
            if not folder.is_dir():
                problems.append(f"logging.file: the folder {folder} does not exist")
    return problems


#: The metrics port in the examples and when ``listen`` names none (any free port will do).
METRICS_PORT: Final = 9108


class ListenAddress:
    __slots__ = ("host", "port")

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(text: str) -> ListenAddress:
    """``HOST:PORT``, ``[IPv6]:PORT``, ``HOST`` (port 9108) or ``:PORT`` (127.0.0.1); raises
    ValueError saying what is wrong."""
    text = text.strip()
    host, port_text = text, str(METRICS_PORT)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{text!r}: expected [IPv6]:PORT")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    host = host or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{text!r}: the port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{text!r}: the port {port} is not a TCP port")
    return ListenAddress(host, port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def metrics_problems(metrics: MetricsConfig, key: str = "metrics.listen") -> list[str]:
    """The endpoint's address parses, and is loopback unless the site allows another (issue 20:
    off by default, loopback by default)."""
    if not metrics.listen:
        return []
    try:
        address = parse_listen(metrics.listen)
    except ValueError as exc:
        return [f"{key}: {exc}"]
    if not is_loopback(address.host) and not metrics.allow_remote:
        return [
            f"{key}: {address.host} is not a loopback address; the endpoint shows the site's "
            "state to anyone who reaches it: set metrics.allow_remote = true to serve there"
        ]
    return []


def notifications_problems(notifications: NotificationsConfig) -> list[str]:
    """Issue 19 point 3: the notificationURI is an https URL with a host and a path; the listener's
    address parses and needs a URL to be given; the bounds are sane."""
    problems: list[str] = []
    if notifications.url:
        url = urlsplit(notifications.url)
        if url.scheme != "https" or not url.hostname:
            problems.append(
                f"notifications.url: {notifications.url!r} must be an https:// URL with a host "
                "(notifications come over mutual TLS)"
            )
        elif not url.path.startswith("/"):
            problems.append(f"notifications.url: {notifications.url!r} needs a path, e.g. /notify")
    if notifications.listen:
        try:
            parse_listen(notifications.listen)
        except ValueError as exc:
            problems.append(f"notifications.listen: {exc}")
        if not notifications.url:
            problems.append(
                "notifications.listen: set notifications.url too (the address the server is "
                "told to notify)"
            )
    for key, value, low, high in (
        ("max_connections", notifications.max_connections, 1, 1024),
        ("max_body_bytes", notifications.max_body_bytes, 1024, 1 << 20),
        ("max_subscriptions", notifications.max_subscriptions, 1, 1000),
    ):
        if not low <= value <= high:
            problems.append(f"notifications.{key}: {value} is outside {low}..{high}")
    if notifications.connection_timeout_s <= 0:
        problems.append("notifications.connection_timeout_s: must be positive")
    if notifications.verify_period_s < 60:
        problems.append(
            f"notifications.verify_period_s: {notifications.verify_period_s:g} is below 60 s "
            "(each check is a request to the server)"
        )
    return problems


def der_keys(config: Config) -> list[tuple[str, BatteryConfig]]:
    """Each DER's settings with the key an operator finds them under."""
    if config.ders:
        return [(f"ders[{i}]", der) for i, der in enumerate(config.ders)]
    return [] if config.battery is None else [("battery", config.battery)]


def _der_problems(config: Config) -> list[str]:
    """Exactly one of ``[battery]`` (one DER) and ``[[ders]]`` (several); each DER's device
    settings as ``[battery]``'s; names well formed and unique; hrefs paths, each named once."""
    if config.battery is None and not config.ders:
        return ["battery: required key is missing (or list the site's DER as [[ders]])"]
    if config.battery is not None and config.ders:
        return ["ders: give either [battery] (one DER) or [[ders]] (several), not both"]
    problems: list[str] = []
    for key, der in der_keys(config):
        problems += _device_problems(key, der)
    seen: dict[str, int] = {}
    hrefs: dict[str, int] = {}
    for i, der in enumerate(config.ders):
        if not _DER_NAME.fullmatch(der.name):
            problems.append(
                f"ders[{i}].name: {der.name!r} is not a DER name (lower-case letters, digits, "
                "'-' and '_', up to 64, starting with a letter or digit)"
            )
        elif der.name in seen:
            problems.append(
                f"ders[{i}].name: {der.name!r} is already the name of ders[{seen[der.name]}]"
            )
        seen.setdefault(der.name, i)
        if der.href is not None:
            if not der.href.startswith("/"):
                problems.append(f"ders[{i}].href: {der.href!r} must be a path starting with '/'")
            elif der.href in hrefs:
                problems.append(
                    f"ders[{i}].href: {der.href!r} is already the href of ders[{hrefs[der.href]}]"
                )
            hrefs.setdefault(der.href, i)
    return problems


def _device_problems(key: str, device: BatteryConfig) -> list[str]:
    problems: list[str] = []
    if device.driver == "sunspec":
        if not device.host:
            problems.append(f"{key}.host: required when {key}.driver is 'sunspec'")
        else:
            problems.extend(_check_host(device.host, key=f"{key}.host"))
        if not 1 <= device.port <= 65535:
            problems.append(f"{key}.port: {device.port} is not a TCP port")
        if not 0 <= device.unit_id <= 255:
            problems.append(f"{key}.unit_id: {device.unit_id} is not a Modbus unit id (0..255)")
    if device.driver == "tags" and not device.tag_map:
        problems.append(f"{key}.tag_map: required when {key}.driver is 'tags'")
    if device.timeout_s <= 0:
        problems.append(f"{key}.timeout_s: must be positive")
    return problems


def _version_problems(server: ServerConfig) -> list[str]:
    """``server.csipaus_versions`` names known versions the profile allows, each once."""
    allowed = {v.name for v in profile_named(server.profile).csipaus_versions}
    problems: list[str] = []
    for name in server.csipaus_versions:
        if name not in allowed:
            problems.append(
                f"server.csipaus_versions: {name!r} is not a CSIP-AUS version the "
                f"{server.profile!r} profile allows (one of {', '.join(sorted(allowed))})"
            )
    if len(set(server.csipaus_versions)) != len(server.csipaus_versions):
        problems.append("server.csipaus_versions: a version is named twice")
    return problems


def _check_host(host: str, *, key: str = "battery.host") -> list[str]:
    try:
        ipaddress.ip_address(host)
        return []
    except ValueError:
        pass
    if re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?", host):
        return []
    return [f"{key}: {host!r} is neither an IP address nor a host name"]

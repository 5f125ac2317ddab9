"""Fleet configuration (aggregator mode, issue 19 point 1): one TOML file for many sites.

The shared sections are the single-site ones — ``[server]``, ``[tls]`` (the aggregator
certificate, its key and the CA), ``[rates]``, ``[logging]`` — plus ``[fleet]`` (its name, the
default PEN) and ``[log] dir``: each site's log is ``<dir>/<site name>.sep2gw`` (decision 0022a).
Each ``[[sites]]`` entry is one EndDevice::

    [fleet]
    name = "vpp-east"
    pen = 37244

    [server]
    url = "https://derms.example.net:8443"

    [tls]
    certificate = "certs/aggregator-chain.pem"
    key = "certs/aggregator.key"
    ca = "certs/serca.pem"

    [log]
    dir = "logs"

    [[sites]]
    name = "smith-st-12"
    nmi = "4102345678"
    pin = 111115
    [sites.battery]
    driver = "sunspec"
    host = "10.8.0.12"

Site LFDI (decision 0022a): a site with its own ``certificate``/``key`` is that certificate's
LFDI (and talks on it); else ``lfdi`` when given; else
:func:`transport.identity.site_lfdi` of the aggregator certificate's LFDI and the site's name with
the profile's PEN convention: stable for a name, unique per site. The SFDI is the LFDI's
(IEEE 2030.5 §6.3.3). Names and LFDIs must be unique. Each site becomes a single-site
:class:`~sep2gw.config.Config` (:meth:`FleetConfig.site_config`): the gateway unit is unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final
from urllib.parse import urlsplit

import msgspec

from sep2gw.config import (
    BatteryConfig,
    Config,
    ConfigError,
    LogConfig,
    LoggingConfig,
    MetricsConfig,
    NotificationsConfig,
    RatesConfig,
    ServerConfig,
    SiteConfig,
    TlsConfig,
    _check,
    _key,
    _Section,
    notifications_problems,
)
from sep2gw.profiles import profile_named
from sep2gw.tomlfile import TomlProblem, decode_toml
from transport.identity import (
    IdentityError,
    lfdi_from_der,
    sfdi_from_lfdi,
    site_lfdi,
)
from transport.pki import PkiError, certificate_der, load_pem_chain

__all__ = [
    "FleetConfig",
    "FleetLogConfig",
    "FleetNotificationsConfig",
    "FleetSection",
    "SiteEntry",
    "SiteIdentity",
    "is_fleet_file",
    "load_fleet_config",
    "parse_fleet_config",
]

#: A site's name: its log file's name too, so no path characters (contract, decision 0022a).
SITE_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_LFDI: Final = re.compile(r"[0-9A-Fa-f]{40}")


class FleetSection(_Section, frozen=True, kw_only=True):
    name: Annotated[
        str, _key("the fleet's name, recorded in every site's log (`fleet.site_identity.v1`)")
    ] = "fleet"
    pen: Annotated[
        int,
        _key(
            "IANA Private Enterprise Number of the aggregator: the default of each site's `pen`, "
            "and the suffix of the LFDIs derived for sites without their own",
            kind="0..2³²−1",
        ),
    ] = 0


class FleetLogConfig(_Section, frozen=True, kw_only=True):
    dir: Annotated[
        str,
        _key(
            "the folder of the fleet's logs: one per site, `<dir>/<site name>.sep2gw`, each with "
            "its own writer lock, verification, checkpoints and rotation",
            kind="path",
        ),
    ] = "logs"
    max_bytes: Annotated[
        int | None,
        _key("the most each site's log may take on disk (as `log.max_bytes`)", kind="bytes"),
    ] = None


class FleetNotificationsConfig(_Section, frozen=True, kw_only=True):
    """Subscriptions for every site and ONE notification listener for the fleet (decision 0022g):
    off unless ``url``. Site ``NAME`` gives the server the notificationURI ``<url>/<NAME>``; the
    fleet serves every site's on ``listen`` (mutual TLS with the aggregator certificate) and routes
    each POST by its path to its site."""

    url: Annotated[
        str,
        _key(
            "the base of the sites' notificationURIs, `https://host[:port]/path`: site NAME's is "
            "`<url>/<NAME>`; empty (the default): no subscriptions",
            kind="URL",
        ),
    ] = ""
    listen: Annotated[
        str,
        _key(
            '`HOST:PORT` the fleet\'s one listener serves on, e.g. `"0.0.0.0:8443"`; empty: no '
            "TCP listener (an embedding application hands connections to "
            "`Fleet.serve_notification_stream`)",
            kind="address",
        ),
    ] = ""
    max_connections: Annotated[
        int,
        _key(
            "connections the fleet's listener serves at once; more are closed as they arrive",
            kind="1..1024",
        ),
    ] = 64
    max_body_bytes: Annotated[
        int, _key("the largest Notification body read (larger: 413)", kind="1 KiB..1 MiB")
    ] = 65536
    connection_timeout_s: Annotated[
        float, _key("a connection is closed this long after it arrived", kind="seconds > 0")
    ] = 30.0
    max_subscriptions: Annotated[
        int,
        _key(
            "subscriptions each site holds at most (as `notifications.max_subscriptions`)",
            kind="1..1000",
        ),
    ] = 32
    verify_period_s: Annotated[
        float,
        _key(
            "each site checks each subscription at most this often (as "
            "`notifications.verify_period_s`)",
            kind="seconds >= 60",
        ),
    ] = 300.0

    def as_listener(self) -> NotificationsConfig:
        """The section as the single-site one (its bounds, its checks)."""
        return NotificationsConfig(
            url=self.url,
            listen=self.listen,
            max_connections=self.max_connections,
            max_body_bytes=self.max_body_bytes,
            connection_timeout_s=self.connection_timeout_s,
            max_subscriptions=self.max_subscriptions,
            verify_period_s=self.verify_period_s,
        )

    def site_url(self, site: str) -> str:
        """Site ``site``'s notificationURI (empty: notifications off)."""
        return f"{self.url.rstrip('/')}/{site}" if self.url else ""


class SiteEntry(_Section, frozen=True, kw_only=True):
    name: Annotated[
        str,
        _key(
            "the site's name, unique in the fleet: `[a-z0-9][a-z0-9_-]{0,63}`; its log is "
            "`<log.dir>/<name>.sep2gw`"
        ),
    ]
    battery: Annotated[
        BatteryConfig,
        _key("the site's device: `[sites.battery]`, the keys of `[battery]`", kind="table"),
    ]
    nmi: Annotated[str | None, _key("the site's NMI (as `site.nmi`)")] = None
    pin: Annotated[
        int | None,
        _key("the site's registration PIN (as `server.pin`; default: `server.pin`)"),
    ] = None
    lfdi: Annotated[
        str | None,
        _key(
            "the site's LFDI (40 hex digits) when the utility issued one; default: derived from "
            "the aggregator certificate and the site's name (decision 0022a)"
        ),
    ] = None
    certificate: Annotated[
        str | None,
        _key(
            "the site's own device certificate chain, when it has one (then `key` too): the site "
            "talks on it and its LFDI is that certificate's",
            kind="path",
        ),
    ] = None
    key: Annotated[str | None, _key("the private key of `certificate`", kind="path")] = None
    key_password_env: Annotated[
        str | None,
        _key("the environment variable holding `key`'s password (as `tls.key_password_env`)"),
    ] = None
    device_category: Annotated[
        int, _key("DeviceCategoryType bitmap of the EndDevice (as `site.device_category`)")
    ] = 1 << 25
    pen: Annotated[int | None, _key("as `site.pen`; default: `fleet.pen`")] = None
    time_zone: Annotated[str, _key("as `site.time_zone`", kind="zone")] = "UTC"


class FleetConfig(_Section, frozen=True, kw_only=True):
    fleet: Annotated[FleetSection, _key("the fleet")] = FleetSection()
    server: Annotated[ServerConfig, _key("the utility server, shared by every site")]
    tls: Annotated[TlsConfig, _key("the aggregator certificate, its key and the CA")]
    rates: Annotated[RatesConfig, _key("default rates, shared")] = RatesConfig()
    log: Annotated[FleetLogConfig, _key("the sites' event logs")] = FleetLogConfig()
    logging: Annotated[LoggingConfig, _key("diagnostics (Python logging)")] = LoggingConfig()
    notifications: Annotated[
        FleetNotificationsConfig,
        _key("subscriptions of every site, and the fleet's one notification listener"),
    ] = FleetNotificationsConfig()
    sites: Annotated[list[SiteEntry], _key("the sites (EndDevices), one entry each")] = []
    #: Set by the loader (the file's folder), not read from the file.
    base_dir: Annotated[str, msgspec.Meta(extra={"internal": True})] = "."

    def path(self, relative: str) -> Path:
        candidate = Path(relative).expanduser()
        return candidate if candidate.is_absolute() else Path(self.base_dir) / candidate

    def site_config(self, index: int) -> Config:
        """Site ``index`` as a single-site configuration (its log in ``log.dir``)."""
        site = self.sites[index]
        own = site.certificate is not None
        return Config(
            server=msgspec.structs.replace(
                self.server, pin=site.pin if site.pin is not None else self.server.pin
            ),
            tls=(
                msgspec.structs.replace(
                    self.tls,
                    certificate=site.certificate or "",
                    key=site.key or "",
                    key_password_env=site.key_password_env,
                )
                if own
                else self.tls
            ),
            battery=site.battery,
            site=SiteConfig(
                nmi=site.nmi,
                time_zone=site.time_zone,
                pen=self.fleet.pen if site.pen is None else site.pen,
                device_category=site.device_category,
            ),
            rates=self.rates,
            log=LogConfig(
                path=str(Path(self.log.dir) / f"{site.name}.sep2gw"), max_bytes=self.log.max_bytes
            ),
            logging=self.logging,
            metrics=MetricsConfig(),
            # The site subscribes with its own notificationURI; the fleet listens for all of them
            # (no listener of the site's own: `listen` stays empty).
            notifications=msgspec.structs.replace(
                self.notifications.as_listener(),
                url=self.notifications.site_url(site.name),
                listen="",
            ),
            base_dir=self.base_dir,
        )


@dataclass(frozen=True, slots=True)
class SiteIdentity:
    """Who a site is to the server: its LFDI and SFDI, and whether it talks on its own device
    certificate (``own_certificate``) or the aggregator's."""

    name: str
    lfdi: str
    sfdi: int
    own_certificate: bool


def is_fleet_file(data: bytes | str) -> bool:
    """Whether a configuration file describes a fleet (it has ``[[sites]]``)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return re.search(r"^\s*\[\[\s*sites\s*\]\]", text, re.MULTILINE) is not None


def load_fleet_config(path: str | Path) -> FleetConfig:
    source = Path(path)
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise ConfigError(str(source), [f"cannot read the file: {exc.strerror or exc}"]) from None
    return parse_fleet_config(data, source=str(source), base_dir=source.resolve().parent)


def parse_fleet_config(
    data: bytes | str, *, source: str, base_dir: Path, check_files: bool = True
) -> FleetConfig:
    """Read and validate a fleet file; raises ConfigError naming every problem, each with its key
    (``sites[3].lfdi: ...``)."""
    try:
        fleet = decode_toml(data, FleetConfig)
    except TomlProblem as exc:
        raise ConfigError(source, [str(exc)]) from None
    fleet = msgspec.structs.replace(fleet, base_dir=str(base_dir))
    problems = _fleet_problems(fleet, check_files=check_files)
    if problems:
        raise ConfigError(source, problems)
    return fleet


def _fleet_problems(fleet: FleetConfig, *, check_files: bool) -> list[str]:
    problems: list[str] = []
    if not fleet.sites:
        problems.append("sites: a fleet needs at least one [[sites]] entry")
    if not 0 <= fleet.fleet.pen <= 0xFFFFFFFF:
        problems.append(f"fleet.pen: {fleet.fleet.pen} is not a Private Enterprise Number")
    # The base may have no path of its own: each site's notificationURI adds `/<site name>`.
    problems += [
        p
        for p in notifications_problems(fleet.notifications.as_listener())
        if "needs a path" not in p
    ]
    if fleet.notifications.url:
        parts = urlsplit(fleet.notifications.url)
        if parts.query or parts.fragment:
            problems.append(
                f"notifications.url: {fleet.notifications.url!r} is the base of each site's "
                "notificationURI (`<url>/<site name>`): no query or fragment"
            )
    shared_seen: set[str] = set()
    names: dict[str, int] = {}
    for i, site in enumerate(fleet.sites):
        key = f"sites[{i}]"
        if not SITE_NAME.fullmatch(site.name):
            problems.append(
                f"{key}.name: {site.name!r} is not a site name ([a-z0-9][a-z0-9_-]{{0,63}}: it "
                "names the site's log file)"
            )
        elif site.name in names:
            problems.append(f"{key}.name: {site.name!r} is also sites[{names[site.name]}]'s name")
        names.setdefault(site.name, i)
        if (site.certificate is None) != (site.key is None):
            problems.append(f"{key}: `certificate` and `key` go together (a site's own identity)")
        if site.key_password_env is not None and site.key is None:
            problems.append(
                f"{key}.key_password_env: only for a site's own `key` (the aggregator's is "
                "tls.key_password_env)"
            )
        if site.lfdi is not None:
            if not _LFDI.fullmatch(site.lfdi):
                problems.append(f"{key}.lfdi: {site.lfdi!r} is not an LFDI (40 hex digits)")
            if site.certificate is not None:
                problems.append(
                    f"{key}.lfdi: a site with its own certificate has that certificate's LFDI"
                )
        for problem in _check(fleet.site_config(i), check_files=check_files):
            if problem.startswith("notifications."):
                continue  # the fleet's section, checked once above
            where, shared = _site_key(problem, key, own=site.certificate is not None)
            if shared:
                if where not in shared_seen:
                    shared_seen.add(where)
                    problems.append(where)
            else:
                problems.append(where)
    if problems:
        return problems
    lfdis: dict[str, int] = {}
    identities = site_identities(fleet) if check_files else []
    for i, identity in enumerate(identities):
        other = lfdis.get(identity.lfdi.upper())
        if other is not None:
            problems.append(
                f"sites[{i}].lfdi: {identity.lfdi} is also sites[{other}]'s LFDI (one EndDevice "
                "per site)"
            )
        lfdis.setdefault(identity.lfdi.upper(), i)
    return problems


#: Single-site keys that a fleet site sets itself, and where they are in the fleet file.
_SITE_KEYS: Final = {
    "server.pin": "pin",
    "site.nmi": "nmi",
    "site.pen": "pen",
    "site.device_category": "device_category",
    "site.time_zone": "time_zone",
}


def _site_key(problem: str, site_key: str, *, own: bool) -> tuple[str, bool]:
    """A single-site problem in fleet terms: (the text naming the fleet key, whether the key is
    shared by every site)."""
    key, _, rest = problem.partition(":")
    if key.startswith("battery."):
        return f"{site_key}.{key}:{rest}", False
    if key in _SITE_KEYS:
        if key == "server.pin":
            return f"{site_key}.pin (or server.pin):{rest}", False
        return f"{site_key}.{_SITE_KEYS[key]}:{rest}", False
    if own and key in ("tls.certificate", "tls.key"):
        return f"{site_key}.{key.removeprefix('tls.')}:{rest}", False
    if key == "log.path":
        return f"log.dir:{rest}", True
    if key.startswith("log.max_bytes"):
        return f"log.max_bytes:{rest}", True
    return problem, True


def site_identities(fleet: FleetConfig) -> list[SiteIdentity]:
    """Each site's LFDI and SFDI by the rule of the module docstring (reads the certificates)."""
    identity_profile = profile_named(fleet.server.profile).identity
    aggregator = _certificate_lfdi(fleet, fleet.tls.certificate, "tls.certificate")
    found: list[SiteIdentity] = []
    for i, site in enumerate(fleet.sites):
        pen = fleet.fleet.pen if site.pen is None else site.pen
        if site.certificate is not None:
            lfdi = _certificate_lfdi(fleet, site.certificate, f"sites[{i}].certificate")
        elif site.lfdi is not None:
            lfdi = site.lfdi.upper()
        else:
            try:
                lfdi = site_lfdi(aggregator, site.name, pen, identity_profile)
            except IdentityError as exc:
                raise ConfigError(f"sites[{i}]", [f"sites[{i}].pen: {exc}"]) from None
        found.append(
            SiteIdentity(
                name=site.name,
                lfdi=lfdi,
                sfdi=sfdi_from_lfdi(lfdi),
                own_certificate=site.certificate is not None,
            )
        )
    return found


def _certificate_lfdi(fleet: FleetConfig, relative: str, key: str) -> str:
    identity_profile = profile_named(fleet.server.profile).identity
    path = fleet.path(relative)
    try:
        chain = load_pem_chain(path.read_bytes(), source=relative)
        return lfdi_from_der(certificate_der(chain[0]), identity_profile)
    except (OSError, PkiError, IdentityError) as exc:
        raise ConfigError(str(path), [f"{key}: {exc}"]) from None

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
from typing import Literal
from urllib.parse import urlsplit

import msgspec

from sep2gw.profiles import PROFILES
from sep2gw.tomlfile import TomlProblem, decode_toml
from transport.identity import check_digit, verify_pin

__all__ = [
    "BatteryConfig",
    "Config",
    "ConfigError",
    "LogConfig",
    "RatesConfig",
    "ServerConfig",
    "SiteConfig",
    "TlsConfig",
    "load_config",
    "parse_config",
]

Profile = Literal["2018", "csip", "csip-aus", "sapn"]


class ConfigError(ValueError):
    """Everything wrong with one configuration file, each problem naming its key."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


class _Section(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Unknown keys are errors: a misspelt key silently ignored is how a site runs on defaults."""


class ServerConfig(_Section, frozen=True, kw_only=True):
    url: str
    dcap_path: str = "/dcap"
    pin: int | None = None
    profile: Profile = "csip-aus"
    http2: bool = True
    register_in_band: bool = True
    request_timeout_s: float = 30.0
    #: The CSIP-AUS versions this site may speak (``v1.2``, ``v1.3-beta/storage``, ``v1.3``),
    #: oldest first; empty: every version the profile allows (issue 18 point 2).
    csipaus_versions: tuple[str, ...] = ()
    #: Try CSIP-AUS v1.3 service discovery (``/.well-known/csipaus``) before ``dcap_path``;
    #: ``None``: as the profile says (on for ``csip-aus`` and ``sapn``).
    well_known: bool | None = None


class TlsConfig(_Section, frozen=True, kw_only=True):
    certificate: str
    key: str
    ca: str
    key_password_env: str | None = None
    extra_ciphers: list[str] = []


class SiteConfig(_Section, frozen=True, kw_only=True):
    nmi: str | None = None
    time_zone: str = "UTC"
    #: IANA Private Enterprise Number written into the mRIDs we create (MirrorUsagePoints).
    pen: int = 0
    #: DeviceCategoryType bitmap of our EndDevice; bit 25 = "Other Storage System".
    device_category: int = 1 << 25


class BatteryConfig(_Section, frozen=True, kw_only=True):
    driver: Literal["sunspec", "tags", "simulated"]
    host: str | None = None
    port: int = 502
    unit_id: int = 1
    timeout_s: float = 3.0
    tag_map: str | None = None


class RatesConfig(_Section, frozen=True, kw_only=True):
    default_poll_s: int = 300
    default_post_s: int = 300
    telemetry_sample_s: float = 5.0


class LogConfig(_Section, frozen=True, kw_only=True):
    path: str = "sep2gw.sep2gw"
    max_bytes: int | None = None


class Config(_Section, frozen=True, kw_only=True):
    server: ServerConfig
    tls: TlsConfig
    battery: BatteryConfig
    site: SiteConfig = SiteConfig()
    rates: RatesConfig = RatesConfig()
    log: LogConfig = LogConfig()
    base_dir: str = "."

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
    if not 0 <= config.site.pen <= 0xFFFFFFFF:
        problems.append(f"site.pen: {config.site.pen} is not a Private Enterprise Number (32 bits)")
    if not 0 < config.site.device_category <= 0xFFFFFFFF:
        problems.append(
            f"site.device_category: {config.site.device_category} is not a DeviceCategoryType bitmap"
        )
    if config.site.nmi is not None and not _NMI.fullmatch(config.site.nmi):
        problems.append(f"site.nmi: {config.site.nmi!r} is not a 10 or 11 character NMI")
    battery = config.battery
    if battery.driver == "sunspec":
        if not battery.host:
            problems.append("battery.host: required when battery.driver is 'sunspec'")
        else:
            problems.extend(_check_host(battery.host))
        if not 1 <= battery.port <= 65535:
            problems.append(f"battery.port: {battery.port} is not a TCP port")
        if not 0 <= battery.unit_id <= 255:
            problems.append(f"battery.unit_id: {battery.unit_id} is not a Modbus unit id (0..255)")
    if battery.driver == "tags" and not battery.tag_map:
        problems.append("battery.tag_map: required when battery.driver is 'tags'")
    if battery.timeout_s <= 0:
        problems.append("battery.timeout_s: must be positive")
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
    if check_files:
        files = [
            ("tls.certificate", config.tls.certificate),
            ("tls.key", config.tls.key),
            ("tls.ca", config.tls.ca),
        ]
        if battery.tag_map:
            files.append(("battery.tag_map", battery.tag_map))
        for key, relative in files:
            resolved = config.path(relative)
            if not resolved.is_file():
                problems.append(f"{key}: {resolved} does not exist or is not a file")
        log_dir = config.path(config.log.path).parent
        if not log_dir.is_dir():
            problems.append(f"log.path: the folder {log_dir} does not exist")
    return problems


def _version_problems(server: ServerConfig) -> list[str]:
    """``server.csipaus_versions`` names known versions the profile allows, each once."""
    allowed = {v.name for v in PROFILES[server.profile].csipaus_versions}
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


def _check_host(host: str) -> list[str]:
    try:
        ipaddress.ip_address(host)
        return []
    except ValueError:
        pass
    if re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?", host):
        return []
    return [f"battery.host: {host!r} is neither an IP address nor a host name"]

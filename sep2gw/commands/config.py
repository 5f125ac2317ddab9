"""``sep2gw check-config FILE``: check that ``sep2gw run --config FILE`` can run, without running it.

Besides the file itself it loads what ``run`` loads and checks what ``run`` needs
(``sep2gw.preflight``): certificate chain, key and CA and their agreement, ECDSA P-256, validity
windows, key permissions, the PIN's check digit, the log folder and an existing log. Exit 0 when
``run`` can start (warnings aside), 2 naming every problem otherwise (``sep2gw.exits``).

``--online`` then reaches what ``run`` reaches, as the commissioning tools do: the server (as
``sep2gw probe``: mutual TLS with the configured identity, GET DeviceCapability) and the battery (as
``sep2gw modbus scan``: the SunSpec models). A link that fails exits 1, a server without a
DeviceCapability or a device that is not SunSpec exits 3.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from sep2gw.config import BatteryConfig, Config, ConfigError, der_keys, load_config
from sep2gw.exits import BAD_INPUT, CHECK_FAILED, FAILED, OK
from sep2gw.fleet_config import is_fleet_file, load_fleet_config, site_identities
from sep2gw.preflight import check_site, errors_of

__all__ = ["register"]


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "check-config", help="validate a configuration file; exit 0 only if it is usable"
    )
    parser.add_argument("path", type=Path, help="the site configuration file (TOML)")
    parser.add_argument(
        "--online",
        action="store_true",
        help="also reach the server (as probe) and the battery (as modbus scan)",
    )
    parser.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    try:
        fleet_file = is_fleet_file(args.path.read_bytes())
    except OSError:
        fleet_file = False  # load_config names the unreadable file
    if fleet_file:
        return _check_fleet(args)
    try:
        config = load_config(args.path)
    except ConfigError as exc:
        _problems(exc.source, exc.problems)
        return BAD_INPUT
    findings = check_site(config, now=time.time(), environ=os.environ)
    for warning in (f for f in findings if f.warning):
        print(f"{args.path}: {warning}", file=sys.stderr)
    errors = errors_of(findings)
    if errors:
        _problems(str(args.path), [str(e) for e in errors])
        return BAD_INPUT
    print(f"{args.path}: ok")
    print(
        f"  server   {config.server.url}{config.server.dcap_path} (profile {config.server.profile})"
    )
    print(f"  identity {config.path(config.tls.certificate)}")
    for der in config.der_list():
        where = f" at {der.host}:{der.port} unit {der.unit_id}" if der.driver == "sunspec" else ""
        print(f"  {der.name:<8} {der.driver}{where}")
    print(f"  log      {config.path(config.log.path)}")
    if args.online:
        return _online(config)
    return OK


def _check_fleet(args: argparse.Namespace) -> int:
    """A fleet file (``[[sites]]``): the file, then what ``run`` needs for each site (the
    aggregator identity once, each site's own identity, driver, PIN and log); problems name the
    site."""
    try:
        fleet = load_fleet_config(args.path)
        identities = site_identities(fleet)
    except ConfigError as exc:
        _problems(exc.source, exc.problems)
        return BAD_INPUT
    errors: list[str] = []
    for i, identity in enumerate(identities):
        findings = check_site(fleet.site_config(i), now=time.time(), environ=os.environ)
        for finding in findings:
            own_key = identity.own_certificate and finding.key in ("tls.certificate", "tls.key")
            shared = finding.key.startswith(("tls.", "server.")) and not own_key
            if own_key:
                finding = msgspec.structs.replace(
                    finding, key=f"sites[{i}].{finding.key.removeprefix('tls.')}"
                )
            text = str(finding) if shared else f"sites[{i}] ({identity.name}): {finding}"
            if finding.warning:
                print(f"{args.path}: {text}", file=sys.stderr)
            elif text not in errors:
                errors.append(text)
    if errors:
        _problems(str(args.path), errors)
        return BAD_INPUT
    print(f"{args.path}: ok (fleet {fleet.fleet.name}, {len(identities)} sites)")
    print(f"  server   {fleet.server.url}{fleet.server.dcap_path} (profile {fleet.server.profile})")
    print(f"  identity {fleet.path(fleet.tls.certificate)} (aggregator)")
    print(f"  logs     {fleet.path(fleet.log.dir)}/<site>.sep2gw")
    for identity in identities:
        own = " (own certificate)" if identity.own_certificate else ""
        print(f"  site     {identity.name}: LFDI {identity.lfdi} SFDI {identity.sfdi}{own}")
    if args.online:
        return _online(fleet.site_config(0))
    return OK


def _online(config: Config) -> int:
    """Reach the server and the battery as ``run`` will; print what each said."""
    import anyio

    results = anyio.run(_reach, config)
    code = OK
    for what, verdict, text in results:
        print(f"  {what:<8} {text}" if verdict == OK else f"  {what:<8} FAILED: {text}")
        if verdict != OK:
            print(f"{what}: {text}", file=sys.stderr)
            code = max(code, verdict)
    return code


async def _reach(config: Config) -> list[tuple[str, int, str]]:
    from urllib.parse import urlsplit

    from lxml import etree

    from actors.https import HttpsClient
    from sep2gw.commands.probe import summarise_dcap
    from sep2gw.preflight import load_key_password
    from transport.errors import LinkError
    from transport.tls import TlsMaterial, client_context

    results: list[tuple[str, int, str]] = []
    url = urlsplit(config.server.url)
    context = client_context(
        TlsMaterial(
            str(config.path(config.tls.certificate)),
            str(config.path(config.tls.key)),
            str(config.path(config.tls.ca)),
            load_key_password(config, os.environ),
        ),
        alpn=("h2", "http/1.1") if config.server.http2 else ("http/1.1",),
        extra_ciphers=tuple(config.tls.extra_ciphers),
    )
    where = f"{url.hostname}:{url.port or 443}{config.server.dcap_path}"
    timeout = config.server.request_timeout_s
    try:
        async with HttpsClient(
            url.hostname or "",
            url.port or 443,
            context,
            connect_timeout_s=timeout,
            request_timeout_s=timeout,
            max_response_bytes=256 * 1024,
        ) as client:
            info = await client.connect()
            response = await client.get(config.server.dcap_path)
    except LinkError as exc:
        results.append(("server", FAILED, f"{where}: {type(exc).__name__}: {exc}"))
    else:
        if response.status != 200:
            results.append(("server", CHECK_FAILED, f"{where}: HTTP {response.status}"))
        else:
            try:
                summary = summarise_dcap(response.body)
            except (ValueError, etree.XMLSyntaxError) as exc:
                results.append(("server", CHECK_FAILED, f"{where}: not a DeviceCapability: {exc}"))
            else:
                results.append(
                    ("server", OK, f"{where}: {info.version} {info.cipher}, {len(summary)} links")
                )
    for key, battery in der_keys(config):
        results.append(await _reach_battery(key, battery))
    return results


async def _reach_battery(key: str, battery: BatteryConfig) -> tuple[str, int, str]:
    if battery.driver != "sunspec" or battery.host is None:
        return (key, OK, f"{battery.driver}: nothing to reach over the network")
    from actors.drivers.sunspec import NotSunSpec
    from sep2gw.commands.battery import scan
    from transport.modbus import ModbusError
    from transport.sunspec import SunSpecError

    where = f"{battery.host}:{battery.port} unit {battery.unit_id}"
    try:
        models = await scan(
            battery.host, battery.port, unit=battery.unit_id, timeout_s=battery.timeout_s
        )
    except NotSunSpec as exc:
        return (key, CHECK_FAILED, f"{where}: {exc}")
    except (ModbusError, SunSpecError) as exc:
        return (key, FAILED, f"{where}: {exc}")
    ids = ", ".join(str(m["id"]) for m in models)
    return (key, OK, f"{where}: SunSpec models {ids}")


def _problems(source: str, problems: list[str]) -> None:
    print(f"{source}: {len(problems)} problem(s):", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)

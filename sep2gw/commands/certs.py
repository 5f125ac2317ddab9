"""``sep2gw certs init DIR``: write a complete demo PKI in the CSIP profile (SERCA, MCA, MICA,
server and device certificates with keys) and print the device's LFDI and SFDI."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

from sep2gw.profiles import (
    DEPRECATED_PROFILE_NAMES,
    PROFILE_NAMES,
    canonical_profile,
    deprecation_of,
    profile_named,
)
from transport.identity import IdentityProfile, lfdi_from_der, sfdi_from_lfdi
from transport.pki import certificate_der, chain_pem, mint_demo_pki, private_key_pem

__all__ = ["add_profile_option", "identity_profile", "register"]


def _profile_argument(name: str) -> str:
    """``--profile``'s value: a deprecated spelling is taken, with a warning on stderr."""
    warning = deprecation_of(name)
    if warning is not None:
        print(f"warning: --profile {warning}", file=sys.stderr)
    return canonical_profile(name)


def add_profile_option(parser: argparse.ArgumentParser) -> None:
    """``--profile``, with the names the configuration's ``server.profile`` takes."""
    old = ", ".join(f"{a!r} for {c!r}" for a, c in DEPRECATED_PROFILE_NAMES.items())
    parser.add_argument(
        "--profile",
        type=_profile_argument,
        choices=PROFILE_NAMES,
        default="2030.5",
        help="the profile whose identity rules apply, as server.profile names it (default "
        f"2030.5; the LFDI and SFDI are the same in all four; {old} still accepted)",
    )


def identity_profile(name: str) -> IdentityProfile:
    return profile_named(name).identity


# File names written by `certs init`; `probe` and the tests use the same names.
FILES = ("ca.pem", "mca.pem", "mica.pem", "server.pem", "server.key", "device.pem", "device.key")


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "certs", help="certificate tooling (demo PKI in the CSIP profile)"
    )
    sub = parser.add_subparsers(dest="certs_command", metavar="ACTION", required=True)
    init = sub.add_parser("init", help="write a demo SERCA/MCA/MICA/server/device PKI into DIR")
    init.add_argument("dir", type=Path, help="folder to write the PKI files into (created)")
    init.add_argument("--force", action="store_true", help="overwrite existing files")
    init.add_argument(
        "--device-serial",
        default="SEP2GW-DEMO-0001",
        help="hwSerialNum written into the device certificate's SAN",
    )
    init.add_argument(
        "--server-name",
        action="append",
        default=None,
        help="DNS name for the server certificate (repeatable; default localhost)",
    )
    init.add_argument(
        "--key-password-env",
        metavar="VAR",
        help="encrypt the private keys with the password in environment variable VAR",
    )
    add_profile_option(init)
    init.set_defaults(handler=_init)


def _write(path: Path, data: bytes, *, secret: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(path, flags, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _init(args: argparse.Namespace) -> int:
    target: Path = args.dir
    existing = [name for name in FILES if (target / name).exists()]
    if existing and not args.force:
        print(
            f"certs init: {target} already holds {', '.join(existing)}; use --force to replace",
            file=sys.stderr,
        )
        return 2
    password: bytes | None = None
    if args.key_password_env:
        value = os.environ.get(args.key_password_env)
        if not value:
            print(
                f"certs init: environment variable {args.key_password_env} is empty or unset",
                file=sys.stderr,
            )
            return 2
        password = value.encode()
    target.mkdir(parents=True, exist_ok=True)
    # notBefore a day back, so a peer whose clock lags ours a little still accepts the chain.
    not_before = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=1)
    pki = mint_demo_pki(
        not_before,
        device_serial=args.device_serial.encode(),
        server_names=tuple(args.server_name or ("localhost",)),
    )
    _write(target / "ca.pem", chain_pem([pki.serca.certificate]), secret=False)
    _write(target / "mca.pem", chain_pem([pki.mca.certificate]), secret=False)
    _write(target / "mica.pem", chain_pem([pki.mica.certificate]), secret=False)
    _write(target / "server.pem", chain_pem(pki.server_chain()), secret=False)
    _write(target / "server.key", private_key_pem(pki.server.key, password), secret=True)
    _write(target / "device.pem", chain_pem(pki.device_chain()), secret=False)
    _write(target / "device.key", private_key_pem(pki.device.key, password), secret=True)
    lfdi = lfdi_from_der(certificate_der(pki.device.certificate), identity_profile(args.profile))
    print(f"wrote demo PKI to {target}: {', '.join(FILES)}")
    print(f"device LFDI: {lfdi}")
    print(f"device SFDI: {sfdi_from_lfdi(lfdi)}")
    return 0

"""``sep2gw id CERT``: print the LFDI and SFDI of a device certificate (PEM or DER file; for a PEM
chain, the first certificate is the device's)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cryptography import x509

from sep2gw.commands.certs import add_profile_option, identity_profile
from transport.identity import lfdi_from_der, sfdi_from_lfdi
from transport.pki import PkiError, certificate_der, load_pem_chain

__all__ = ["leaf_der", "register"]


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "id", help="print the LFDI and SFDI of a certificate"
    )
    parser.add_argument("cert", type=Path, help="certificate file (PEM chain, leaf first, or DER)")
    add_profile_option(parser)
    parser.set_defaults(handler=_id)


def leaf_der(path: Path) -> bytes:
    """The DER bytes of the first certificate in ``path`` (the LFDI hashes these, never the
    PEM text)."""
    data = path.read_bytes()
    if data.lstrip().startswith(b"-----BEGIN"):
        return certificate_der(load_pem_chain(data, source=str(path))[0])
    if data[:1] == b"\x30":
        try:
            return certificate_der(x509.load_der_x509_certificate(data))
        except ValueError as exc:
            raise PkiError(f"{path}: not a readable DER certificate ({exc})") from exc
    raise PkiError(f"{path}: neither a PEM certificate nor DER")


def _id(args: argparse.Namespace) -> int:
    try:
        der = leaf_der(args.cert)
    except (OSError, PkiError) as exc:
        print(f"id: {exc}", file=sys.stderr)
        return 2
    lfdi = lfdi_from_der(der, identity_profile(args.profile))
    print(f"LFDI: {lfdi}")
    print(f"SFDI: {sfdi_from_lfdi(lfdi)}")
    return 0

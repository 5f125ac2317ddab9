"""``sep2gw probe URL --cert --key --ca [--dcap PATH]``: the commissioning check. Connects with the
device identity, shows what TLS settled (version, cipher, ALPN, the server's chain and that it
verified), the device LFDI/SFDI, then GETs DeviceCapability and summarises it.

Exit codes: 0 success; 1 the link failed (the typed reason is printed); 2 bad arguments or files;
3 the server answered, but not with a DeviceCapability.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
from cryptography import x509
from lxml import etree

from actors.https import HttpsClient, TlsInfo
from sep2gw.commands.certs import add_profile_option, identity_profile
from sep2gw.commands.ident import leaf_der
from transport.errors import LinkError
from transport.http.messages import Response
from transport.identity import lfdi_from_der, sfdi_from_lfdi
from transport.pki import PkiError, profile_violations
from transport.tls import DEFAULT_ALPN, TlsConfigError, TlsMaterial, client_context

__all__ = ["register", "summarise_dcap"]

SEP_NS = "urn:ieee:std:2030.5:ns"
_MAX_DCAP_BYTES = 256 * 1024


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "probe", help="check the secure link to a 2030.5 server and read its DeviceCapability"
    )
    parser.add_argument("url", help="server URL, e.g. https://utility.example:8443/")
    parser.add_argument(
        "--cert", required=True, type=Path, help="device certificate chain (PEM: device, MICA, MCA)"
    )
    parser.add_argument("--key", required=True, type=Path, help="device private key (PEM)")
    parser.add_argument("--ca", required=True, type=Path, help="root CA (SERCA) to verify against")
    parser.add_argument(
        "--key-password-env",
        metavar="VAR",
        help="read the key password from this environment variable",
    )
    parser.add_argument(
        "--dcap", default=None, help="DeviceCapability path (default: the URL's path, else /dcap)"
    )
    parser.add_argument("--http1", action="store_true", help="offer only HTTP/1.1 in ALPN")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds per step")
    add_profile_option(parser)
    parser.add_argument(
        "--extra-cipher",
        action="append",
        default=[],
        help="also offer this OpenSSL cipher (test servers only; logged)",
    )
    parser.set_defaults(handler=_probe)


def _err(message: str) -> None:
    print(f"probe: {message}", file=sys.stderr)


def _describe(der: bytes) -> str:
    cert = x509.load_der_x509_certificate(der)
    subject = cert.subject.rfc4514_string() or "(empty subject)"
    return f"{subject}  <- issued by {cert.issuer.rfc4514_string()}"


def summarise_dcap(body: bytes) -> list[str]:
    """A few lines about a DeviceCapability document: pollRate and the links it advertises.
    Parsed with entities, DTDs and network access off (the body comes from the network)."""
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
    )
    root = etree.fromstring(body, parser)
    local = etree.QName(root).localname
    if local != "DeviceCapability":
        raise ValueError(f"root element is {local}, not DeviceCapability")
    lines = [f"DeviceCapability href={root.get('href')} pollRate={root.get('pollRate', '(900)')}"]
    for child in root:
        name = etree.QName(child).localname
        if name.endswith("Link"):
            count = child.get("all")
            suffix = f" (all={count})" if count is not None else ""
            lines.append(f"  {name}: {child.get('href')}{suffix}")
    return lines


def _print_tls(info: TlsInfo, ca: Path) -> None:
    print(f"TLS version:  {info.version}")
    print(f"cipher:       {info.cipher}")
    print(f"ALPN:         {info.alpn}")
    print(f"server chain: {len(info.peer_chain_der)} certificate(s) sent")
    for index, der in enumerate(info.peer_chain_der):
        print(f"  [{index}] {_describe(der)}")
    print(f"verified:     yes, against {ca} (host-name check off, as 2030.5 requires)")


async def _run(
    args: argparse.Namespace, material: TlsMaterial, host: str, port: int, path: str
) -> int:
    context = client_context(
        material,
        alpn=("http/1.1",) if args.http1 else DEFAULT_ALPN,
        extra_ciphers=args.extra_cipher,
    )
    async with HttpsClient(
        host,
        port,
        context,
        connect_timeout_s=args.timeout,
        request_timeout_s=args.timeout,
        max_response_bytes=_MAX_DCAP_BYTES,
    ) as client:
        info = await client.connect()
        _print_tls(info, args.ca)
        response: Response = await client.get(path)
    print(f"GET {path}: {response.status} {response.header('content-type') or ''}".rstrip())
    if response.status != 200:
        if response.status in (301, 302, 307, 308):
            print(f"  moved to {response.header('location')}")
        _err(f"DeviceCapability at {path} answered HTTP {response.status}")
        return 3
    try:
        for line in summarise_dcap(response.body):
            print(line)
    except (ValueError, etree.XMLSyntaxError) as exc:
        _err(f"{path} did not return a DeviceCapability: {exc}")
        return 3
    return 0


def _probe(args: argparse.Namespace) -> int:
    url = urlsplit(args.url if "://" in args.url else f"https://{args.url}")
    if url.scheme != "https" or not url.hostname:
        _err(f"URL {args.url!r} must be https://host[:port][/path]")
        return 2
    port = url.port or 443
    path = args.dcap or (url.path if url.path not in ("", "/") else "/dcap")
    password: bytes | None = None
    if args.key_password_env:
        value = os.environ.get(args.key_password_env)
        if not value:
            _err(f"environment variable {args.key_password_env} is empty or unset")
            return 2
        password = value.encode()
    try:
        der = leaf_der(args.cert)
    except (OSError, PkiError) as exc:
        _err(str(exc))
        return 2
    lfdi = lfdi_from_der(der, identity_profile(args.profile))
    print(f"device LFDI:  {lfdi}")
    print(f"device SFDI:  {sfdi_from_lfdi(lfdi)}")
    for problem in profile_violations(x509.load_der_x509_certificate(der)):
        # A utility may refuse such a certificate; say so before the handshake does.
        print(f"warning:      device certificate departs from the CSIP profile: {problem}")
    print(f"server:       {url.hostname}:{port}")
    material = TlsMaterial(str(args.cert), str(args.key), str(args.ca), password)
    try:
        return anyio.run(_run, args, material, url.hostname, port, path)
    except TlsConfigError as exc:
        _err(str(exc))
        return 2
    except LinkError as exc:
        _err(f"link failed: {type(exc).__name__}: {exc}")
        return 1

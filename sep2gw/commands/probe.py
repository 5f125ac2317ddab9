"""``sep2gw probe URL --cert --key --ca [--dcap PATH]``: the commissioning check. Connects with the
device identity, shows what TLS settled (version, cipher, ALPN, the server's chain and that it
verified), the device LFDI/SFDI, asks for CSIP-AUS v1.3 service discovery
(``/.well-known/csipaus``), GETs the DeviceCapability (the one discovery chose, unless ``--dcap``
names one) and summarises it, then prints the CSIP-AUS version the gateway would speak and how it
is learned: negotiated by the well-known document, or the namespace of the server's documents
(DeviceCapability, then its EndDeviceList), as the gateway does (issue 18).

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
from transport.sep2.versions import (
    CSIPAUS_VERSIONS,
    WELL_KNOWN_PATH,
    CsipAusVersion,
    MalformedWellKnown,
    choose_version,
    csipaus_namespaces,
    parse_well_known,
    version_of_namespace,
)
from transport.tls import DEFAULT_ALPN, TlsConfigError, TlsMaterial, client_context

__all__ = ["register", "server_version", "summarise_dcap"]

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
        "--dcap",
        default=None,
        help="DeviceCapability path (default: the one service discovery offers, else the URL's "
        "path, else /dcap)",
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


def _discovery(response: Response) -> tuple[str, CsipAusVersion | None, str | None]:
    """What the well-known answer says: a line to print, the version chosen and its
    DeviceCapability path (``None``, ``None``: no version to negotiate)."""
    if response.status != 200:
        return f"no service discovery (HTTP {response.status})", None, None
    try:
        offer = parse_well_known(response.body)
    except MalformedWellKnown as exc:
        return f"MALFORMED: {exc}", None, None
    offered = ", ".join(offer.namespaces)
    chosen = choose_version(offer, CSIPAUS_VERSIONS)
    if chosen is None:
        return f"offers only {offered}: no version this gateway speaks", None, None
    version, paths = chosen
    return f"offers {offered}; chosen {version.name} -> {paths[0]}", version, paths[0]


def server_version(negotiated: CsipAusVersion | None, documents: list[tuple[str, bytes]]) -> str:
    """The CSIP-AUS version line: negotiated by discovery, else the first known namespace the
    server's documents (path, body) declare, else the gateway's starting version."""
    if negotiated is not None:
        return f"{negotiated.name} ({negotiated.namespace}), negotiated by {WELL_KNOWN_PATH}"
    unknown: list[str] = []
    for path, body in documents:
        for namespace in csipaus_namespaces(body):
            version = version_of_namespace(namespace)
            if version is not None:
                return f"{version.name} ({namespace}), from the namespace of {path}"
            unknown.append(f"{namespace} in {path}")
    if unknown:
        return (
            f"UNKNOWN: CSIP-AUS namespace {unknown[0]} (a server fault: its elements are not read)"
        )
    return (
        "not declared (no service discovery; no CSIP-AUS namespace in "
        + ", ".join(p for p, _ in documents)
        + f"): the gateway starts with {CSIPAUS_VERSIONS[0].name}"
    )


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
        well_known = await client.request(
            "GET", WELL_KNOWN_PATH, headers=(("accept", "application/json"),)
        )
        said, negotiated, offered_path = _discovery(well_known)
        print(f"discovery:    {WELL_KNOWN_PATH}: {said}")
        if args.dcap is None and offered_path is not None:
            path = offered_path
        response: Response = await client.get(path)
        print(f"GET {path}: {response.status} {response.header('content-type') or ''}".rstrip())
        if response.status != 200:
            if response.status in (301, 302, 307, 308):
                print(f"  moved to {response.header('location')}")
            _err(f"DeviceCapability at {path} answered HTTP {response.status}")
            return 3
        try:
            lines = summarise_dcap(response.body)
        except (ValueError, etree.XMLSyntaxError) as exc:
            _err(f"{path} did not return a DeviceCapability: {exc}")
            return 3
        for line in lines:
            print(line)
        documents = [(path, response.body)]
        edev = _link_href(response.body, "EndDeviceListLink")
        if negotiated is None and not csipaus_namespaces(response.body) and edev is not None:
            listed = await client.get(edev)
            if listed.status == 200:
                documents.append((edev, listed.body))
    print(f"CSIP-AUS:     {server_version(negotiated, documents)}")
    return 0


def _link_href(body: bytes, name: str) -> str | None:
    """The href of the DeviceCapability's link ``name`` (already parsed once: it is well-formed)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    for child in etree.fromstring(body, parser):
        if etree.QName(child).localname == name:
            href = child.get("href")
            return href if href and href.startswith("/") else None
    return None


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

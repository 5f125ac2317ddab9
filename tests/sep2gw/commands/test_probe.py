"""``sep2gw probe``: the commissioning check against a loopback mTLS server."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import anyio
import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from actors.https import HttpsServer, PeerInfo
from sep2gw.cli import main
from tests.tls_fixtures import PkiFiles
from transport.http.messages import SEP_XML, Request, Response
from transport.http.router import Router
from transport.identity import lfdi_from_der, sfdi_from_lfdi
from transport.pki import certificate_der, chain_pem
from transport.tls import CCM8, server_context

DCAP = (
    b'<DeviceCapability xmlns="urn:ieee:std:2030.5:ns" href="/dcap" pollRate="300">'
    b'<TimeLink href="/tm"/><EndDeviceListLink href="/edev" all="1"/>'
    b'<MirrorUsagePointListLink href="/mup" all="0"/></DeviceCapability>'
)


async def _dcap(request: Request, peer: PeerInfo) -> Response:
    return Response(200, (("content-type", SEP_XML),), DCAP)


async def _not_dcap(request: Request, peer: PeerInfo) -> Response:
    return Response(200, (("content-type", SEP_XML),), b"<Time xmlns='urn:ieee:std:2030.5:ns'/>")


def _answer(body: bytes, content_type: str = SEP_XML) -> object:
    async def handler(request: Request, peer: PeerInfo) -> Response:
        return Response(200, (("content-type", content_type),), body)

    return handler


@asynccontextmanager
async def utility(pki: PkiFiles, extra: dict[str, object] | None = None) -> AsyncIterator[int]:
    """``extra``: more GET routes, path -> handler."""
    router: Router[object] = Router()
    router.add("GET", "/dcap", _dcap)
    router.add("GET", "/tm", _not_dcap)
    for path, handler in (extra or {}).items():
        router.add("GET", path, handler)
    server = HttpsServer(router, server_context(pki.server))  # type: ignore[arg-type]
    async with anyio.create_task_group() as tg:
        yield await tg.start(partial(server.run, host="127.0.0.1"))
        tg.cancel_scope.cancel()


def _args(pki: PkiFiles, port: int, *extra: str) -> list[str]:
    return [
        "probe",
        f"https://127.0.0.1:{port}/",
        "--cert",
        pki.device.chain,
        "--key",
        pki.device.key,
        "--ca",
        pki.ca,
        "--timeout",
        "10",
        *extra,
    ]


async def _probe(argv: list[str]) -> int:
    # The CLI runs its own event loop, so it goes to a worker thread; the server stays here.
    code: int = await trio.to_thread.run_sync(main, argv)
    return code


async def test_probe_reports_tls_identity_and_dcap_summary(
    pki_a: PkiFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    with trio.fail_after(30):
        async with utility(pki_a) as port:
            code = await _probe(_args(pki_a, port))
    out = capsys.readouterr().out
    assert code == 0, out
    lfdi = lfdi_from_der(certificate_der(pki_a.pki.device.certificate))
    assert f"device LFDI:  {lfdi}" in out
    assert f"device SFDI:  {sfdi_from_lfdi(lfdi)}" in out
    assert "TLS version:  TLSv1.2" in out
    assert f"cipher:       {CCM8}" in out
    assert "ALPN:         h2" in out
    assert "server chain: 2 certificate(s)" in out
    assert "verified:     yes" in out
    assert "DeviceCapability href=/dcap pollRate=300" in out
    assert "EndDeviceListLink: /edev (all=1)" in out


async def test_probe_http1_flag_limits_alpn(
    pki_a: PkiFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    with trio.fail_after(30):
        async with utility(pki_a) as port:
            assert await _probe(_args(pki_a, port, "--http1")) == 0
    assert "ALPN:         http/1.1" in capsys.readouterr().out


async def test_probe_fails_with_reason_on_untrusted_server(
    pki_a: PkiFiles, pki_b: PkiFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    stranger = dataclasses.replace(pki_a, ca=pki_b.ca)
    with trio.fail_after(30):
        async with utility(pki_a) as port:
            code = await _probe(_args(stranger, port))
    assert code == 1
    assert "link failed: UnknownCA" in capsys.readouterr().err


async def test_probe_non_dcap_answer_exits_3(
    pki_a: PkiFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    with trio.fail_after(30):
        async with utility(pki_a) as port:
            missing = await _probe(_args(pki_a, port, "--dcap", "/nowhere"))
            wrong = await _probe(_args(pki_a, port, "--dcap", "/tm"))
    err = capsys.readouterr().err
    assert (missing, wrong) == (3, 3)
    assert "answered HTTP 404" in err and "not DeviceCapability" in err


def test_probe_bad_files_exit_2(pki_a: PkiFiles, capsys: pytest.CaptureFixture[str]) -> None:
    argv = _args(pki_a, 1)
    argv[argv.index("--key") + 1] = "/nonexistent/device.key"
    assert main(argv) == 2
    assert "/nonexistent/device.key" in capsys.readouterr().err
    assert main(["probe", "http://x/", "--cert", "a", "--key", "b", "--ca", "c"]) == 2


async def test_probe_warns_about_a_device_certificate_outside_the_profile(
    pki_a: PkiFiles, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Re-issue the device certificate with a 30-year lifetime (CSIP wants 9999-12-31).
    pki = pki_a.pki
    device = pki.device.certificate
    short = (
        x509.CertificateBuilder()
        .subject_name(device.subject)
        .issuer_name(pki.mica.certificate.subject)
        .public_key(device.public_key())
        .serial_number(device.serial_number)
        .not_valid_before(device.not_valid_before_utc)
        .not_valid_after(device.not_valid_before_utc + dt.timedelta(days=30 * 365))
    )
    for extension in device.extensions:
        short = short.add_extension(extension.value, extension.critical)
    cert = short.sign(pki.mica.key, hashes.SHA256())
    chain = tmp_path / "short.pem"
    chain.write_bytes(chain_pem([cert, pki.mica.certificate, pki.mca.certificate]))
    argv = _args(pki_a, 0)
    argv[argv.index("--cert") + 1] = str(chain)
    with trio.fail_after(30):
        async with utility(pki_a) as port:
            argv[1] = f"https://127.0.0.1:{port}/"
            assert await _probe(argv) == 0  # usable, but flagged
    assert "departs from the CSIP profile: notAfter" in capsys.readouterr().out


V13_DCAP = DCAP.replace(b'href="/dcap"', b'href="/v13/dcap"')
EDEV_V12 = (
    b'<EndDeviceList xmlns="urn:ieee:std:2030.5:ns" xmlns:csipaus="https://csipaus.org/ns" '
    b'href="/edev" all="0" results="0"/>'
)


async def test_probe_prints_the_version_negotiated_by_service_discovery(
    pki_a: PkiFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 18: ``sep2gw probe`` prints the negotiated version, and reads the DeviceCapability
    the well-known document names for it."""
    offer = (
        b'{"supportedSchemaVersions": {"https://csipaus.org/ns": {"dcap": ["/dcap"]}, '
        b'"https://csipaus.org/ns/v1.3": {"dcap": ["/v13/dcap"]}}}'
    )
    with trio.fail_after(30):
        async with utility(
            pki_a,
            {
                "/.well-known/csipaus": _answer(offer, "application/json"),
                "/v13/dcap": _answer(V13_DCAP),
            },
        ) as port:
            code = await _probe(_args(pki_a, port))
    out = capsys.readouterr().out
    assert code == 0, out
    assert "discovery:    /.well-known/csipaus: offers https://csipaus.org/ns, " in out
    assert "chosen v1.3 -> /v13/dcap" in out
    assert "GET /v13/dcap: 200" in out and "DeviceCapability href=/v13/dcap" in out
    assert (
        "CSIP-AUS:     v1.3 (https://csipaus.org/ns/v1.3), negotiated by /.well-known/csipaus"
        in out
    )


async def test_probe_without_discovery_prints_the_version_of_the_servers_namespace(
    pki_a: PkiFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    with trio.fail_after(30):
        async with utility(pki_a, {"/edev": _answer(EDEV_V12)}) as port:
            code = await _probe(_args(pki_a, port))
    out = capsys.readouterr().out
    assert code == 0, out
    assert "discovery:    /.well-known/csipaus: no service discovery (HTTP 404)" in out
    assert "CSIP-AUS:     v1.2 (https://csipaus.org/ns), from the namespace of /edev" in out


async def test_probe_says_when_no_version_is_declared(
    pki_a: PkiFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    with trio.fail_after(30):
        async with utility(
            pki_a, {"/.well-known/csipaus": _answer(b"{}", "application/json")}
        ) as port:
            code = await _probe(_args(pki_a, port))
    out = capsys.readouterr().out
    assert code == 0, out
    assert "discovery:    /.well-known/csipaus: MALFORMED: no supportedSchemaVersions" in out
    assert "CSIP-AUS:     not declared (" in out and "the gateway starts with v1.2" in out

"""Simulated utility server benchmark: how much a request costs the server, so simulations and
end-to-end tests know it is not their bottleneck.

    python3 benchmarks/simserver_bench.py [--requests 300] [--controls 100]

Measures the pure state model (``UtilityState.handle``: route, access check, build, serialise) for a
DeviceCapability and for a DERControlList page of ``--controls`` controls, and the same list GET over
kept-alive mutual TLS on loopback (HTTP/1.1 and HTTP/2) with ``actors.https.HttpsClient``. Prints
human-readable lines, then one JSON line with handle_dcap_us, handle_list_us, wire_h11_list_us,
wire_h2_list_us (medians). Shared machine: noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.https import HttpsClient
from benchmarks.link_bench import write_pki
from sep2gw.simserver import (
    CreateControl,
    Modes,
    ProgramSpec,
    Scenario,
    SimClock,
    SimUtilityServer,
    UtilityState,
)
from transport.identity import lfdi_from_der, sfdi_from_lfdi
from transport.pki import certificate_der, load_pem_chain
from transport.sep2 import encode
from transport.sep2 import resources as r
from transport.tls import TlsMaterial, client_context

START = 1_780_000_000


def scenario(controls: int) -> Scenario:
    return Scenario(
        programs=[ProgramSpec(id="p", primacy=1)],
        actions=[
            CreateControl(
                at_s=0,
                program="p",
                start_s=60 * i,
                duration_s=60,
                mrid=f"{i + 1:X}",
                modes=Modes(opModExpLimW=1000 + i),
            )
            for i in range(controls)
        ],
    )


def end_device(lfdi: str) -> r.EndDevice:
    return r.EndDevice(
        sFDI=sfdi_from_lfdi(lfdi), lFDI=r.HexBinary160(int(lfdi, 16)), changedTime=START
    )


def median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def pure(controls: int, requests: int) -> tuple[float, float]:
    lfdi = "0A" + "1" * 38
    state = UtilityState(scenario(controls), start=START)
    for _, action in state.scenario.timeline():
        state.apply(action, START)
    state.handle("POST", "/edev", encode(end_device(lfdi)), lfdi, START)
    results = []
    for target in ("/dcap", f"/derp/1/derc?l={controls}"):
        samples = []
        for _ in range(requests):
            t0 = time.perf_counter()
            reply = state.handle("GET", target, b"", lfdi, START + 30)
            samples.append(time.perf_counter() - t0)
            assert reply.status == 200
        results.append(median_us(samples))
    return results[0], results[1]


async def wire(
    controls: int,
    requests: int,
    alpn: tuple[str, ...],
    device: TlsMaterial,
    server_tls: TlsMaterial,
    lfdi: str,
) -> float:
    server = SimUtilityServer(scenario(controls), server_tls, clock=SimClock(START))
    async with anyio.create_task_group() as group:
        port = await group.start(server.serve_tcp)
        async with HttpsClient("127.0.0.1", port, client_context(device, alpn=alpn)) as client:
            created = await client.request("POST", "/edev", body=encode(end_device(lfdi)))
            assert created.status == 201, created
            samples = []
            for _ in range(requests):
                t0 = time.perf_counter()
                response = await client.get(f"/derp/1/derc?l={controls}")
                samples.append(time.perf_counter() - t0)
                assert response.status == 200
        group.cancel_scope.cancel()
    return median_us(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--controls", type=int, default=100)
    args = parser.parse_args()
    dcap_us, list_us = pure(args.controls, args.requests)
    print(f"state.handle GET /dcap: {dcap_us:.1f} µs (median of {args.requests})")
    print(f"state.handle GET DERControlList of {args.controls}: {list_us:.1f} µs")
    with tempfile.TemporaryDirectory() as folder:
        device, server_tls = write_pki(Path(folder))
        lfdi = lfdi_from_der(certificate_der(load_pem_chain(Path(device.chain).read_bytes())[0]))
        timings = [
            anyio.run(
                wire, args.controls, args.requests, alpn, device, server_tls, lfdi, backend="trio"
            )
            for alpn in (("http/1.1",), ("h2", "http/1.1"))
        ]
    h11, h2 = timings
    print(f"over mTLS loopback, HTTP/1.1: {h11:.1f} µs per list GET")
    print(f"over mTLS loopback, HTTP/2:   {h2:.1f} µs per list GET")
    print("(shared machine: figures are noisy)")
    print(
        json.dumps(
            {
                "handle_dcap_us": round(dcap_us, 1),
                "handle_list_us": round(list_us, 1),
                "wire_h11_list_us": round(h11, 1),
                "wire_h2_list_us": round(h2, 1),
            }
        )
    )


if __name__ == "__main__":
    main()

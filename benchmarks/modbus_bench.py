"""Modbus TCP over loopback: write-and-verify, a 50-register read, and a raw-socket floor.

All three run in one trio process against servers in the same process, so they share the costs of
the event loop and the loopback stack; the difference between a Modbus figure and the floor is what
the Modbus/SunSpec layers add (our client, MBAP framing, pymodbus PDUs, the simulated device's
register map). The simulated device's clock is frozen so its physics is not part of the timing.

Prints human-readable lines, then one JSON line with ``write_verify_us``, ``read50_us`` and
``floor_us`` (medians, microseconds) plus their p99s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trio

from actors.drivers.modbus_client import ModbusTcpClient
from sep2gw.sim import BatteryParams, SimBattery, SiteParams
from sep2gw.sim.modbus_server import SimModbusServer
from transport.sunspec import model_def

NOON = 1_700_006_400 - 1_700_006_400 % 86_400 + 12 * 3600


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def raw_echo(stream: trio.SocketStream, answer: bytes) -> None:
    async with stream:
        while True:
            data = await stream.receive_some(4096)
            if not data:
                return
            await stream.send_all(answer)


async def main(iterations: int) -> dict[str, float]:
    sim = SimBattery(BatteryParams(), SiteParams(), seed=1, start_s=NOON)
    server = SimModbusServer(sim, clock=lambda: NOON)
    results: dict[str, list[float]] = {}
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        wset = server.map.blocks[704].base + model_def(704).point("WSet").offset
        async with ModbusTcpClient("127.0.0.1", port) as client:
            await client.read_holding(40000, 2)  # connect outside the timing

            async def write_verify(k: int) -> None:
                words = [0, k % 4000]
                await client.write_registers(wset, words)
                if await client.read_holding(wset, 2) != words:
                    raise AssertionError("read back differs")

            async def read50(_k: int) -> None:
                await client.read_holding(40000, 50)

            for name, op in (("write_verify", write_verify), ("read50", read50)):
                for k in range(iterations // 10):
                    await op(k)  # warm-up
                samples = []
                for k in range(iterations):
                    start = time.perf_counter_ns()
                    await op(k)
                    samples.append((time.perf_counter_ns() - start) / 1000)
                results[name] = samples

        # Floor: the same request/answer sizes as the 50-register read, over a raw trio stream.
        request = bytes(12)
        answer = bytes(9 + 100)
        listeners = await nursery.start(trio.serve_tcp, lambda s: raw_echo(s, answer), 0)
        raw_port = listeners[0].socket.getsockname()[1]
        stream = await trio.open_tcp_stream("127.0.0.1", raw_port)
        async with stream:

            async def roundtrip() -> None:
                await stream.send_all(request)
                got = 0
                while got < len(answer):
                    got += len(await stream.receive_some(4096))

            for _ in range(iterations // 10):
                await roundtrip()
            samples = []
            for _ in range(iterations):
                start = time.perf_counter_ns()
                await roundtrip()
                samples.append((time.perf_counter_ns() - start) / 1000)
            results["floor"] = samples
        nursery.cancel_scope.cancel()
    out: dict[str, float] = {}
    for name, samples in results.items():
        median, p99 = statistics.median(samples), percentile(samples, 0.99)
        print(f"{name:>13}: median {median:8.1f} µs   p99 {p99:8.1f} µs   ({len(samples)} runs)")
        out[f"{name}_us"] = round(median, 1)
        out[f"{name}_p99_us"] = round(p99, 1)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3000)
    args = parser.parse_args()
    print("Modbus TCP over loopback (trio, one process; timings on a shared machine are noisy)")
    figures = trio.run(main, args.iterations)
    print(json.dumps(figures))

"""``sep2gw sim-server --port N --pki DIR [--scenario FILE]``: the simulated IEEE 2030.5 utility
server on loopback, over mutual TLS with a demo PKI (``sep2gw certs init DIR`` layout:
``server.pem``, ``server.key``, ``ca.pem``), following a scenario file or the built-in demo."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from sep2gw.simserver import (
    ScenarioError,
    SimClock,
    SimUtilityServer,
    demo_scenario,
    load_scenario,
    server_material,
)
from transport.tls import TlsConfigError

__all__ = ["register"]


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "sim-server", help="serve a simulated IEEE 2030.5 utility server (mutual TLS, loopback)"
    )
    parser.add_argument("--port", type=int, default=8443, help="TCP port (0: any free port)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default loopback)"
    )
    parser.add_argument(
        "--pki",
        type=Path,
        required=True,
        help="folder written by `sep2gw certs init` (server.pem, server.key, ca.pem)",
    )
    parser.add_argument(
        "--scenario", type=Path, help="scenario TOML file (default: the built-in demo)"
    )
    parser.add_argument(
        "--key-password-env",
        metavar="VAR",
        help="the server key's password is in environment variable VAR",
    )
    parser.set_defaults(handler=_sim_server)


def _sim_server(args: argparse.Namespace) -> int:
    if not 0 <= args.port < 65536:
        print(f"sep2gw sim-server: --port {args.port} is not in 0..65535", file=sys.stderr)
        return 2
    missing = [n for n in ("server.pem", "server.key", "ca.pem") if not (args.pki / n).is_file()]
    if missing:
        print(
            f"sep2gw sim-server: --pki {args.pki} lacks {', '.join(missing)} "
            "(create it with `sep2gw certs init DIR`)",
            file=sys.stderr,
        )
        return 2
    password: bytes | None = None
    if args.key_password_env:
        value = os.environ.get(args.key_password_env)
        if not value:
            print(
                f"sep2gw sim-server: environment variable {args.key_password_env} is empty or unset",
                file=sys.stderr,
            )
            return 2
        password = value.encode()
    try:
        scenario = load_scenario(args.scenario) if args.scenario else demo_scenario()
    except ScenarioError as exc:
        print(f"sep2gw sim-server: {exc}", file=sys.stderr)
        return 2
    material = server_material(args.pki, password)
    wall = time.time()  # the simulated utility's clock starts at this machine's wall time

    async def run() -> None:
        server = SimUtilityServer(scenario, material, clock=SimClock.for_scenario(scenario, wall))
        async with anyio.create_task_group() as group:
            port = await group.start(
                lambda task_status: server.serve_tcp(
                    host=args.host, port=args.port, task_status=task_status
                )
            )
            print(
                f"simulated utility server ({scenario.name}, {len(scenario.actions)} actions) "
                f"serving https://{args.host}:{port}/dcap",
                flush=True,
            )

    try:
        anyio.run(run, backend="trio")
    except TlsConfigError as exc:
        print(f"sep2gw sim-server: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"sep2gw sim-server: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr
        )
        return 1
    return 0

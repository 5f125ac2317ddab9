"""``sep2gw run --config fleet.toml`` and ``sep2gw check-config fleet.toml``: aggregator mode from the
command line (issue 19 point 1)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from events.fleet_events import SiteIdentityRecorded
from events.log_events import LogCheckpoint
from events.registry import CATALOGUE
from events.runtime_events import GatewayStarted, GatewayStopped
from events.sqlite_store import SqliteEventStore
from sep2gw.cli import main
from sep2gw.logtrust import check_checkpoints

ROOT = Path(__file__).resolve().parents[3]

FLEET = """
[fleet]
name = "vpp-test"
pen = 37244

[server]
url = "https://127.0.0.1:{port}"
pin = 111115

[tls]
certificate = "pki/device.pem"
key = "pki/device.key"
ca = "roots.pem"

[log]
dir = "logs"

[[sites]]
name = "north"
nmi = "4102345678"
[sites.battery]
driver = "sunspec"
host = "127.0.0.1"
port = {port}

[[sites]]
name = "south"
certificate = "own/device.pem"
key = "own/device.key"
[sites.battery]
driver = "sunspec"
host = "127.0.0.1"
port = {port}
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fleet")
    assert main(["certs", "init", str(folder / "pki")]) == 0
    assert main(["certs", "init", str(folder / "own")]) == 0
    (folder / "logs").mkdir()
    # the server's roots: the SERCA of the aggregator's chain and of the site's own device
    roots = (folder / "pki" / "ca.pem").read_bytes() + (folder / "own" / "ca.pem").read_bytes()
    (folder / "roots.pem").write_bytes(roots)
    with socket.socket() as s:  # a port that was free a moment ago and is closed now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (folder / "fleet.toml").write_text(FLEET.format(port=port))
    return folder


def test_check_config_validates_a_fleet_and_names_each_site(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", str(folder / "fleet.toml")]) == 0
    out = capsys.readouterr().out
    assert "ok (fleet vpp-test, 2 sites)" in out
    assert "site     north: LFDI " in out and "site     south: LFDI " in out
    assert "(own certificate)" in out


def test_check_config_names_the_site_whose_own_certificate_does_not_chain(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = folder / "one-root.toml"
    bad.write_text((folder / "fleet.toml").read_text().replace("roots.pem", "pki/ca.pem"))
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "sites[1] (south): sites[1].certificate: " in err and "does not verify" in err


def test_check_config_refuses_a_bad_site_naming_it(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = folder / "bad.toml"
    bad.write_text((folder / "fleet.toml").read_text().replace('"north"', '"North Site"'))
    assert main(["check-config", str(bad)]) == 2
    assert "sites[0].name: 'North Site' is not a site name" in capsys.readouterr().err


def test_run_starts_one_gateway_per_site_each_with_its_own_log(folder: Path) -> None:
    # Nothing listens: every site starts, backs off, and stops after --duration; each log
    # begins with who it is about and ends signed.
    argv = ["run", "--config", str(folder / "fleet.toml"), "--duration", "0.3", "--quiet"]
    code = f"from sep2gw.cli import main\nprint(main({argv!r}))"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-1] == "0"
    assert "running fleet vpp-test (2 sites)" in proc.stdout
    identities = {}
    for name in ("north", "south"):
        with SqliteEventStore(folder / "logs" / f"{name}.sep2gw", CATALOGUE, readonly=True) as s:
            assert s.verify().ok
            events = [r.event for r in s.read()]
            signed = check_checkpoints(s)
        assert isinstance(events[0], GatewayStarted)
        assert isinstance(events[1], SiteIdentityRecorded) and events[1].site == name
        assert isinstance(events[-2], GatewayStopped) and isinstance(events[-1], LogCheckpoint)
        assert signed.ok, signed.describe()
        identities[name] = events[1]
    north, south = identities["north"], identities["south"]
    assert (north.fleet, north.nmi, north.lfdi.endswith("00037244")) == (
        "vpp-test",
        "4102345678",
        True,
    )
    assert north.aggregator_lfdi and south.aggregator_lfdi == ""
    assert north.lfdi != south.lfdi


def test_sim_runs_a_library_scenario_as_a_fleet_and_writes_a_log_per_site(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = folder / "sim-site"
    logs = folder / "sim-logs"
    argv = ["sim", "event_lifecycle", "--sites", "2", "--quiet", "--site", str(site)]
    assert main([*argv, "--log", str(logs)]) == 0
    out = capsys.readouterr().out
    assert "event_lifecycle seed 1: fleet of 2 sites, 0 violation(s)" in out
    assert "1 DeviceCapability GET(s) at the start for 2 sites" in out
    for name in ("site-000", "site-001"):
        with SqliteEventStore(logs / f"{name}.sep2gw", CATALOGUE, readonly=True) as store:
            assert store.verify().ok
    assert main([*argv[:2], "--sites", "0", "--site", str(site)]) == 2
    assert "--sites must be 1..100000" in capsys.readouterr().err


def test_the_aggregator_key_is_opened_with_the_fleets_password_whichever_site_is_first(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review finding 4: the aggregator key's password was read through site 0's configuration,
    which, for a site with its own certificate, names that site's own variable (here none): an
    encrypted aggregator key failed the whole fleet."""
    import shutil

    from cryptography.hazmat.primitives import serialization

    from sep2gw.fleet import Fleet
    from sep2gw.fleet_config import parse_fleet_config

    for name in ("pki", "own"):
        shutil.copytree(folder / name, tmp_path / name)
    shutil.copy(folder / "roots.pem", tmp_path / "roots.pem")
    (tmp_path / "logs").mkdir()
    key_path = tmp_path / "pki" / "device.key"
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"aggregator password"),
        )
    )
    monkeypatch.setenv("AGGREGATOR_KEY_PASSWORD", "aggregator password")
    text = (folder / "fleet.toml").read_text()
    north, south = text.index("[[sites]]"), text.rindex("[[sites]]")
    own_site_first = text[:north] + text[south:] + "\n" + text[north:south]
    own_site_first = own_site_first.replace(
        'ca = "roots.pem"', 'ca = "roots.pem"\nkey_password_env = "AGGREGATOR_KEY_PASSWORD"'
    )
    fleet = parse_fleet_config(own_site_first, source="fleet.toml", base_dir=tmp_path)
    assert fleet.sites[0].certificate is not None  # site 0 has its own certificate
    Fleet(fleet)  # the aggregator's context loads its encrypted key

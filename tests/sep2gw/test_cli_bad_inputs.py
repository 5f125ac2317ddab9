"""No traceback from any command for any bad input (issue 16 point 2), and one exit-code convention
(``sep2gw.exits``: 0 ok, 1 runtime failure, 2 bad input or configuration, 3 a check failed, 130
interrupted).

Every command runs over a corpus of bad files, flags and signals; each case asserts the exit code,
the words that name what was wrong, and that nothing escaped as a traceback or as an "internal
error" (the CLI's catch-all for what no command handled: a bug). Most cases run in-process; signals,
a second process holding the log and an unwritable folder need subprocesses.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from events.registry import CATALOGUE
from events.runtime_events import RUNTIME_STREAM, GatewayStarted
from events.sqlite_store import APPLICATION_ID, SqliteEventStore
from sep2gw.cli import main
from sep2gw.exits import BAD_INPUT, CHECK_FAILED, INTERRUPTED, OK

ROOT = Path(__file__).resolve().parents[2]
#: As root, the commands run without the capabilities that let root ignore permission bits, so a
#: folder and files without write permission stop them as they stop any user (switching to
#: ``nobody`` would also lose the interpreter when it lives under root's 0700 home, as in CI).
UNPRIVILEGED = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"]

CONFIG = """
[server]
url = "https://127.0.0.1:9"
pin = 111115
[tls]
certificate = "{certificate}"
key = "{key}"
ca = "{ca}"
{password}
[battery]
driver = "sunspec"
host = "127.0.0.1"
port = 9
[log]
path = "{log}"
"""


def _pem(
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey, password: bytes | None = None
) -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def _log(path: Path, records: int = 8) -> Path:
    with SqliteEventStore(path, CATALOGUE) as store:
        for i in range(records):
            store.append_events(
                RUNTIME_STREAM,
                [GatewayStarted(software_version="x" * 100, rng_seed=i, clock_synced=False)],
                server_time=1_764_000_000.0 + i,
                monotonic=float(i),
            )
    return path


def _sql(path: Path, statement: str, *args: object) -> None:
    conn = sqlite3.connect(path)
    conn.execute(statement, args)
    conn.commit()
    conn.close()


class Site:
    """A site folder with a good PKI and every bad file of the corpus, made once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        assert main(["certs", "init", str(root / "pki")]) == OK
        pki = root / "pki"
        (pki / "rsa.key").write_bytes(_pem(rsa.generate_private_key(65537, 2048)))
        (pki / "ed25519.key").write_bytes(_pem(ed25519.Ed25519PrivateKey.generate()))
        device = serialization.load_pem_private_key((pki / "device.key").read_bytes(), None)
        assert isinstance(device, rsa.RSAPrivateKey) is False
        (pki / "encrypted.key").write_bytes(
            device.private_bytes(  # type: ignore[union-attr]
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            )
        )
        for p in pki.glob("*.key"):
            p.chmod(0o600)
        # damaged logs
        truncated = _log(root / "truncated.sep2gw", 300)
        data = truncated.read_bytes()
        truncated.write_bytes(data[: len(data) // 2 + 100])  # a page cut mid-way
        # a record the gateway folds at start (telemetry) whose body is not JSON
        _sql(
            _log(root / "not-json.sep2gw"),
            "UPDATE events SET type = 'hardware.telemetry.v1', body = 'not json {' WHERE seq = 5",
        )
        _sql(
            _log(root / "40mb-body.sep2gw"),
            "UPDATE events SET type = 'hardware.telemetry.v1', body = ? WHERE seq = 5",
            '{"type":"' + "x" * 40_000_000 + '"}',
        )
        _sql(
            _log(root / "far-future.sep2gw"), "UPDATE events SET server_time = 1e300 WHERE seq = 5"
        )
        (root / "bad-anchor.json").write_text(
            '{"kind": "sep2gw log anchor v1", "seq": -1, "head_hash": "00", "certificate": "",'
            ' "signature": ""}'
        )
        conn = sqlite3.connect(root / "no-tables.sep2gw")
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        conn.commit()
        conn.close()

    def config(self, name: str, **files: str) -> Path:
        values = {
            "certificate": "pki/device.pem",
            "key": "pki/device.key",
            "ca": "pki/ca.pem",
            "password": "",
            "log": f"{name}.sep2gw",
        }
        values.update(files)
        path = self.root / f"{name}.toml"
        path.write_text(CONFIG.format(**values))
        return path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return Site(tmp_path_factory.mktemp("bad-inputs"))


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    for text in (out, err):
        assert "Traceback" not in text
        assert "internal error" not in text
    return code, out, err


# -- what `run` needs, and check-config saying the same ------------------------------------------

IDENTITY = {
    "ca_path_pointing_at_a_key": ({"ca": "pki/device.key"}, "tls.ca", "holds a private key"),
    "key_not_matching_the_certificate": (
        {"key": "pki/server.key"},
        "tls.key",
        "does not match the certificate",
    ),
    "certificate_file_that_is_not_one": (
        {"certificate": "truncated.sep2gw"},
        "tls.certificate",
        "is not a PEM certificate",
    ),
    "rsa_key_with_the_ec_certificate": ({"key": "pki/rsa.key"}, "tls.key", "is an RSA key"),
    "ed25519_key_with_the_ec_certificate": (
        {"key": "pki/ed25519.key"},
        "tls.key",
        "is an Ed25519 key",
    ),
    "encrypted_key_without_key_password_env": (
        {"key": "pki/encrypted.key"},
        "tls.key",
        "never prompts",
    ),
    "key_password_env_naming_an_unset_variable": (
        {"key": "pki/encrypted.key", "password": 'key_password_env = "SEP2GW_TEST_UNSET"'},
        "tls.key_password_env",
        "SEP2GW_TEST_UNSET is unset or empty",
    ),
}


@pytest.mark.parametrize("command", ["run", "check-config"])
@pytest.mark.parametrize("case", sorted(IDENTITY))
def test_an_identity_run_cannot_use_is_refused_by_run_and_check_config_alike(
    site: Site, capsys: pytest.CaptureFixture[str], case: str, command: str
) -> None:
    files, key, words = IDENTITY[case]
    config = site.config(case, **files)
    argv = (
        ["run", "--config", str(config), "--quiet"] if command == "run" else [command, str(config)]
    )
    code, _, err = _run(capsys, argv)
    assert code == BAD_INPUT, err
    assert f"{key}: " in err and words in err, err


def test_an_encrypted_key_is_read_with_the_password_from_the_environment(
    site: Site, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEP2GW_TEST_KEY_PASSWORD", "secret")
    config = site.config(
        "encrypted_ok",
        key="pki/encrypted.key",
        password='key_password_env = "SEP2GW_TEST_KEY_PASSWORD"',
    )
    code, out, err = _run(capsys, ["check-config", str(config)])
    assert code == OK, err
    assert "ok" in out


def test_check_config_warns_of_a_key_others_can_read(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    loose = site.root / "pki" / "loose.key"
    shutil.copyfile(site.root / "pki" / "device.key", loose)
    loose.chmod(0o644)
    code, _, err = _run(capsys, ["check-config", str(site.config("loose", key="pki/loose.key"))])
    assert code == OK
    assert "warning: tls.key" in err and "mode 0644" in err


LOGS = {
    "a_page_truncated": ("truncated", "not a sep2gw event log"),
    "a_body_that_is_not_json": ("not-json", "record 5"),
    "a_40_mb_body": ("40mb-body", "record 5"),
    "our_application_id_but_no_tables": ("no-tables", "holds no log schema"),
}


#: Files that are not (usable as) our log: `run` refuses them as it refuses any wrong file.
NOT_OUR_LOG = ("a_page_truncated", "our_application_id_but_no_tables")


@pytest.mark.parametrize(
    ("case", "command"),
    # run keeps the site controlled on a new log when the records do not verify: the test below
    [(case, "check-config") for case in sorted(LOGS)] + [(case, "run") for case in NOT_OUR_LOG],
)
def test_a_damaged_log_is_named_by_run_and_check_config_without_a_traceback(
    site: Site, capsys: pytest.CaptureFixture[str], case: str, command: str
) -> None:
    name, words = LOGS[case]
    config = site.config(f"log-{name}", log=f"{name}.sep2gw")
    argv = (
        ["run", "--config", str(config), "--quiet"] if command == "run" else [command, str(config)]
    )
    code, _, err = _run(capsys, argv)
    assert code == BAD_INPUT, err
    assert f"{name}.sep2gw" in err and words in err, err
    assert len(err) < 4000  # the 40 MB body is not quoted whole


@pytest.mark.parametrize("case", sorted(set(LOGS) - set(NOT_OUR_LOG)))
def test_run_sets_a_log_that_does_not_verify_aside_and_says_so(
    site: Site, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    """Issue 16 point 6: a log whose records do not verify is never folded and never appended to;
    `run` keeps it untouched under another name, starts a new log and raises an alarm naming the
    first bad record — no traceback, and the 40 MB body is not quoted whole."""
    name, words = LOGS[case]
    copy = site.root / f"run-{name}.sep2gw"
    shutil.copyfile(site.root / f"{name}.sep2gw", copy)
    before = copy.read_bytes()
    config = site.config(f"run-log-{name}", log=copy.name)
    code, out, err = _run(capsys, ["run", "--config", str(config), "--duration", "1"])
    assert code == OK, err
    alarms = [line for line in out.splitlines() if "ALARM: the log did not verify" in line]
    assert len(alarms) == 1 and words in alarms[0] and len(alarms[0]) < 4000, out[-2000:]
    (kept,) = [
        p for p in site.root.glob(f"{copy.name}.untrusted-*") if not p.name.endswith(("-wal", "-shm"))
    ]
    assert kept.read_bytes() == before


@pytest.mark.parametrize("command", ["run", "check-config"])
def test_a_driver_run_cannot_make_is_refused_by_run_and_check_config_alike(
    site: Site, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    config = site.config("tags")
    config.write_text(
        config.read_text().replace(
            'driver = "sunspec"', 'driver = "tags"\ntag_map = "tag-map.toml"'
        )
    )
    (site.root / "tag-map.toml").write_text("")
    argv = (
        ["run", "--config", str(config), "--quiet"] if command == "run" else [command, str(config)]
    )
    code, _, err = _run(capsys, argv)
    assert code == BAD_INPUT, err
    assert "battery.driver: 'tags' needs a driver object" in err


def test_run_refuses_a_duration_that_is_not_positive(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, ["run", "--config", str(site.config("d")), "--duration", "-5"])
    assert code == BAD_INPUT
    assert "--duration -5 must be a positive number of seconds" in err


HOLDER = """
import os, sys
from events.log_lock import LogHolder
from events.registry import CATALOGUE
from events.sqlite_store import SqliteEventStore
store = SqliteEventStore(sys.argv[1], CATALOGUE,
                         exclusive=LogHolder(pid=os.getpid(), started=1780000000.0, host="gw-1"))
print("locked", flush=True)
sys.stdin.read()
"""


def test_one_writer_per_log_a_second_gateway_is_refused_naming_the_first(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site.config("shared")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(site.root / "shared.sep2gw")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        code, out, err = _run(capsys, ["run", "--config", str(config), "--quiet"])
        assert code == BAD_INPUT
        assert "in use by another writer" in err and f"pid {holder.pid} on gw-1" in err, err
        assert "running against" not in out  # refused before it started anything
        code, _, err = _run(capsys, ["check-config", str(config)])
        assert code == BAD_INPUT and f"pid {holder.pid}" in err
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)


@pytest.fixture
def unwritable() -> Iterator[Path]:
    """A folder the suite's user may not write (as root: root without its override capabilities)."""
    folder = Path(tempfile.mkdtemp(prefix="sep2gw-unwritable-"))
    try:
        folder.chmod(0o755)
        yield folder
    finally:
        shutil.rmtree(folder)


def test_an_unwritable_log_folder_is_reported_as_such(site: Site, unwritable: Path) -> None:
    shutil.copytree(site.root / "pki", unwritable / "pki")
    for p in (unwritable / "pki").iterdir():
        p.chmod(0o444)  # readable, not writable, by the unprivileged run below
    (unwritable / "logs").mkdir(mode=0o555)
    (unwritable / "logs").chmod(0o555)
    config = unwritable / "site.toml"
    config.write_text(
        CONFIG.format(
            certificate="pki/device.pem",
            key="pki/device.key",
            ca="pki/ca.pem",
            password="",
            log="logs/site.sep2gw",
        )
    )
    as_user = (
        UNPRIVILEGED if os.geteuid() == 0 else []
    )
    done = subprocess.run(
        [*as_user, sys.executable, "-m", "sep2gw", "run", "--config", str(config), "--quiet"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == BAD_INPUT, done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert "cannot write the log there" in done.stderr, done.stderr
    assert "not a sep2gw event log" not in done.stderr


# -- the log and forensic tools ------------------------------------------------------------------

TOOLS: dict[str, tuple[Callable[[Path], list[str]], int, str]] = {
    "inspect_a_server_time_of_1e300": (
        lambda r: ["log", "inspect", str(r / "far-future.sep2gw")],
        OK,
        "1e+300 s (not a date: outside 1970..9999)",
    ),
    "tail_a_server_time_of_1e300": (
        lambda r: ["log", "tail", str(r / "far-future.sep2gw")],
        OK,
        "1e+300 s (not a date: outside 1970..9999)",
    ),
    "inspect_our_application_id_but_no_tables": (
        lambda r: ["log", "inspect", str(r / "no-tables.sep2gw")],
        BAD_INPUT,
        "holds no log schema",
    ),
    "inspect_a_page_truncated": (
        lambda r: ["log", "inspect", str(r / "truncated.sep2gw")],
        BAD_INPUT,
        "not a sep2gw event log",
    ),
    "verify_a_40_mb_body": (
        lambda r: ["log", "verify", str(r / "40mb-body.sep2gw")],
        CHECK_FAILED,
        "record 5: unknown event type",
    ),
    "replay_a_log_altered": (
        lambda r: ["replay", str(r / "far-future.sep2gw")],
        CHECK_FAILED,
        "refused: the log did not verify",
    ),
    "replay_forced_over_a_server_time_of_1e300": (
        lambda r: ["replay", str(r / "far-future.sep2gw"), "--force"],
        OK,
        "1e+300 s (not a date: outside 1970..9999)",
    ),
    "explain_a_body_that_is_not_json": (
        lambda r: ["explain", str(r / "not-json.sep2gw"), "--at", "1764000003"],
        CHECK_FAILED,
        "record 5",
    ),
    "report_into_a_missing_folder": (
        lambda r: ["report", str(r / "far-future.sep2gw"), "-o", str(r / "no" / "r.html")],
        BAD_INPUT,
        "is not a folder",
    ),
    "verify_with_an_anchor_that_is_no_anchor": (
        lambda r: [
            "log",
            "verify",
            str(r / "far-future.sep2gw"),
            "--anchor",
            str(r / "pki" / "ca.pem"),
        ],
        BAD_INPUT,
        "not a sep2gw log anchor",
    ),
    "verify_with_an_anchor_whose_seq_is_negative": (
        lambda r: [
            "log",
            "verify",
            str(r / "far-future.sep2gw"),
            "--anchor",
            str(r / "bad-anchor.json"),
        ],
        BAD_INPUT,
        "'seq' is not a record number",
    ),
    "verify_with_a_missing_anchor": (
        lambda r: ["log", "verify", str(r / "far-future.sep2gw"), "--anchor", str(r / "no.json")],
        BAD_INPUT,
        "cannot read",
    ),
    "verify_requiring_a_certificate_that_is_a_key": (
        lambda r: [
            "log",
            "verify",
            str(r / "far-future.sep2gw"),
            "--certificate",
            str(r / "pki" / "device.key"),
        ],
        BAD_INPUT,
        "device.key",
    ),
    "anchor_without_a_key": (
        lambda r: ["log", "anchor", str(r / "far-future.sep2gw")],
        BAD_INPUT,
        "the device key is needed",
    ),
    "anchor_with_a_key_that_is_a_certificate": (
        lambda r: [
            "log",
            "anchor",
            str(r / "far-future.sep2gw"),
            "--cert",
            str(r / "pki" / "device.pem"),
            "--key",
            str(r / "pki" / "ca.pem"),
        ],
        BAD_INPUT,
        "ca.pem",
    ),
    "anchor_with_a_missing_config": (
        lambda r: ["log", "anchor", str(r / "far-future.sep2gw"), "--config", str(r / "no.toml")],
        BAD_INPUT,
        "no.toml",
    ),
    "salvage_of_a_page_truncated": (
        lambda r: ["log", "salvage", str(r / "truncated.sep2gw"), str(r / "salvaged-1.sep2gw")],
        BAD_INPUT,
        "not a sep2gw event log",
    ),
    "salvage_into_a_missing_folder": (
        lambda r: ["log", "salvage", str(r / "not-json.sep2gw"), str(r / "no" / "s.sep2gw")],
        BAD_INPUT,
        "the folder",
    ),
    "salvage_over_an_existing_file": (
        lambda r: ["log", "salvage", str(r / "not-json.sep2gw"), str(r / "far-future.sep2gw")],
        BAD_INPUT,
        "never overwrites",
    ),
    "export_a_file_that_is_no_log": (
        lambda r: ["export", str(r / "pki" / "ca.pem")],
        BAD_INPUT,
        "not a sep2gw event log",
    ),
    "id_of_a_key": (lambda r: ["id", str(r / "pki" / "device.key")], BAD_INPUT, "device.key"),
    "probe_with_a_ca_that_is_a_key": (
        lambda r: [
            "probe",
            "https://127.0.0.1:9/dcap",
            "--cert",
            str(r / "pki" / "device.pem"),
            "--key",
            str(r / "pki" / "device.key"),
            "--ca",
            str(r / "pki" / "device.key"),
        ],
        BAD_INPUT,
        "device.key",
    ),
    "modbus_scan_of_no_endpoint": (
        lambda r: ["modbus", "scan", "nowhere"],
        BAD_INPUT,
        "expected HOST:PORT",
    ),
    "sim_of_a_missing_scenario": (
        lambda r: ["sim", str(r / "missing.toml")],
        BAD_INPUT,
        "missing.toml",
    ),
    "sim_server_with_an_encrypted_key_and_no_password": (
        lambda r: ["sim-server", "--port", "0", "--pki", str(r / "encrypted-pki")],
        BAD_INPUT,
        "never prompts",
    ),
}


@pytest.mark.parametrize("case", sorted(TOOLS))
def test_every_tool_names_what_was_wrong_with_the_right_exit_code(
    site: Site, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    encrypted = site.root / "encrypted-pki"
    if not encrypted.exists():
        shutil.copytree(site.root / "pki", encrypted)
        shutil.copyfile(site.root / "pki" / "encrypted.key", encrypted / "server.key")
    argv, expected, words = TOOLS[case]
    code, out, err = _run(capsys, argv(site.root))
    assert code == expected, err
    assert words in out + err, out[-2000:] + err


def _busy_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize("command", ["sim-battery", "sim-server"])
def test_a_busy_port_is_named(site: Site, capsys: pytest.CaptureFixture[str], command: str) -> None:
    with _busy_port() as busy:
        port = busy.getsockname()[1]
        extra = ["--pki", str(site.root / "pki"), "--quiet"] if command == "sim-server" else []
        code, _, err = _run(capsys, [command, "--port", str(port), *extra])
    assert code == BAD_INPUT
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in err


# -- Ctrl-C ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "ready", "expected", "words"),
    [
        (["sim-battery", "--port", "0"], "serving", OK, "sim-battery: stopped"),
        (["sim-server", "--port", "0", "--pki", "{pki}", "--quiet"], "serving", OK, "stopped"),
        (["sim", "--seeds", "1000", "--quiet"], None, INTERRUPTED, "sim: interrupted"),
    ],
    ids=["sim-battery", "sim-server", "sim"],
)
def test_ctrl_c_stops_without_a_traceback(
    site: Site, argv: list[str], ready: str | None, expected: int, words: str
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "sep2gw", *(a.format(pki=site.root / "pki") for a in argv)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    if ready is not None:
        assert ready in child.stdout.readline()
    else:
        # a world is under way once the interpreter has imported it; a second is plenty
        try:
            child.wait(timeout=1.5)
        except subprocess.TimeoutExpired:
            pass
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=30)
    assert child.returncode == expected, err[-3000:]
    assert "Traceback" not in out + err
    assert words in err


def test_the_exit_codes_are_documented_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == OK
    text = capsys.readouterr().out
    assert "exit codes (every command):" in text
    for code in (OK, 1, BAD_INPUT, CHECK_FAILED, INTERRUPTED):
        assert f"\n  {code:<4} " in text

"""A log is trusted only if it verifies (issue 16): signed checkpoints, the start-up check that
sets a bad log aside, anchors kept off site, and salvage of the verifiable prefix."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
import trio

from actors.mirror import POSTED_TAG, TELEMETRY_TAG
from events.control_events import LimitsInForceChanged
from events.hardware_events import LimitsApplied
from events.hashchain import GENESIS, link
from events.log_events import LogCheckpoint, LogSetAsideReported, PreviousLogSetAside
from events.registry import CATALOGUE
from events.runtime_events import RUNTIME_STREAM, GatewayStarted
from events.sqlite_store import SqliteEventStore
from sep2gw.cli import main
from sep2gw.exits import BAD_INPUT, CHECK_FAILED, OK
from sep2gw.gateway import _RECENT_READS_S, _start_folded_tags
from sep2gw.logtrust import (
    AnchorError,
    DeviceSigner,
    StartVerdict,
    check_anchor,
    check_checkpoints,
    make_anchor,
    salvage,
    verify_for_start,
)
from sep2gw.simserver import demo_scenario
from tests.sep2gw.world import World, deadline
from transport.pki import certificate_der, load_pem_chain, load_private_key
from transport.sep2 import resources as r

ROWS = "SELECT seq, stream, version, type, server_time, monotonic, CAST(body AS BLOB) FROM events"


@pytest.fixture
def site(pki: Path, tmp_path: Path) -> Path:
    shutil.copytree(pki / "pki", tmp_path / "pki")
    return tmp_path


def signer_of(site: Path) -> DeviceSigner:
    key = load_private_key((site / "pki" / "device.key").read_bytes())
    chain = load_pem_chain((site / "pki" / "device.pem").read_bytes())
    return DeviceSigner(key, certificate_der(chain[0]))


async def run_site(site: Path, seconds: float) -> World:
    """The demo scenario on the site's own log file, as ``sep2gw run`` keeps it."""
    world = World(site, demo_scenario(), None)
    with deadline(3600):
        await world.run(seconds)
    for gateway in world.gateways:
        gateway.store.close()
    return world


def received_a1(path: Path) -> int:
    """The record holding A1's content as received (its 1.5 kW export limit)."""
    # closed here, not when collected: a connection left open keeps the WAL of the edit that
    # follows out of the file, and its late close would write it into the file set aside
    with closing(sqlite3.connect(path)) as conn:
        (seq,) = conn.execute(
            "SELECT seq FROM events WHERE type = 'control.received.v1' AND body LIKE '%A1\"%'"
        ).fetchone()
    return int(seq)


def raise_export_limit(path: Path, seq: int, *, recompute_chain: bool) -> None:
    """Edit A1's export limit 1500 → 15000 W in record ``seq``; optionally recompute every hash
    from there to the head, as someone without the device key could."""
    conn = sqlite3.connect(path)
    (body,) = conn.execute("SELECT CAST(body AS BLOB) FROM events WHERE seq = ?", (seq,)).fetchone()
    edited = body.replace(b'"export_limit_w":1500.0', b'"export_limit_w":15000.0')
    assert edited != body
    conn.execute("UPDATE events SET body = ? WHERE seq = ?", (edited, seq))
    if recompute_chain:
        (previous,) = conn.execute("SELECT hash FROM events WHERE seq = ?", (seq - 1,)).fetchone()
        rows = conn.execute(ROWS + " WHERE seq >= ? ORDER BY seq", (seq,)).fetchall()
        for row in rows:
            previous = link(previous or GENESIS, *row)
            conn.execute("UPDATE events SET hash = ? WHERE seq = ?", (previous, row[0]))
        conn.execute("UPDATE head SET hash = ? WHERE id = 1", (previous,))
    conn.commit()
    conn.close()


def set_aside_logs(site: Path) -> list[Path]:
    aside = sorted(site.glob("site.sep2gw.untrusted-*"))
    return [p for p in aside if not p.name.endswith(("-wal", "-shm"))]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_the_gateway_signs_its_log_and_the_signatures_verify(
    site: Path, autojump_clock: trio.abc.Clock
) -> None:
    await run_site(site, 120)
    with SqliteEventStore(site / "site.sep2gw", CATALOGUE, readonly=True) as store:
        assert store.verify().ok
        report = check_checkpoints(store)
        checkpoints = [r.event for r in store.read() if isinstance(r.event, LogCheckpoint)]
        head = store.head()
    assert report.ok and report.checked == len(checkpoints) >= 2, report.describe()
    assert report.signers == (signer_of(site).lfdi,)
    assert checkpoints[0].certificate is not None  # a copy of the log can be checked on its own
    assert report.last_through_seq == head.seq - 1  # the last records are signed on the way out


async def test_a_chain_recomputed_after_an_edit_is_caught_by_the_signatures(
    site: Path, autojump_clock: trio.abc.Clock
) -> None:
    await run_site(site, 120)
    path = site / "site.sep2gw"
    raise_export_limit(path, received_a1(path), recompute_chain=True)
    with SqliteEventStore(path, CATALOGUE, readonly=True) as store:
        assert store.verify().ok  # the chain alone cannot tell
        report = check_checkpoints(store)
    assert not report.ok and "rewritten" in (report.problem or ""), report.describe()


@pytest.mark.parametrize("recompute_chain", [False, True])
async def test_a_log_that_does_not_verify_is_set_aside_and_never_folded(
    site: Path, autojump_clock: trio.abc.Clock, recompute_chain: bool
) -> None:
    """The issue's case: A1's received content edited 1500 → 15000 W between two runs. The next
    start keeps the file untouched under another name, starts a new log naming it, and never
    applies 15000 W."""
    await run_site(site, 60)
    path = site / "site.sep2gw"
    edited = received_a1(path)
    raise_export_limit(path, edited, recompute_chain=recompute_chain)
    before = digest(path)
    await run_site(site, 60)
    (kept,) = set_aside_logs(site)
    assert digest(kept) == before
    with SqliteEventStore(path, CATALOGUE, readonly=True) as store:
        records = list(store.read())
        assert store.verify().ok
    first = records[0].event
    assert isinstance(first, PreviousLogSetAside) and first.kept_as == str(kept)
    if recompute_chain:
        assert "signed checkpoint" in first.finding
    else:
        assert first.verified_records == edited - 1 and f"record {edited}:" in first.finding
    exports = [
        e.event.settings.export_limit_w
        for e in records
        if isinstance(e.event, LimitsInForceChanged | LimitsApplied)
    ]
    assert exports and 15000.0 not in exports


async def test_an_anchor_detects_a_log_cut_short_or_rewritten(
    site: Path, autojump_clock: trio.abc.Clock
) -> None:
    await run_site(site, 60)
    path = site / "site.sep2gw"
    with SqliteEventStore(path, CATALOGUE, readonly=True) as store:
        anchor = make_anchor(store, signer_of(site), now=1.7e9)
        assert check_anchor(store, anchor) is None
        anchored = store.head().seq
    with pytest.raises(AnchorError, match="signature"):
        with SqliteEventStore(path, CATALOGUE, readonly=True) as store:
            check_anchor(store, anchor.replace('"seq": ', '"seq": 1'))
    cut = site / "cut.sep2gw"
    shutil.copy(path, cut)
    with sqlite3.connect(cut) as conn:
        conn.execute("DELETE FROM events WHERE seq >= ?", (anchored - 3,))
        conn.execute(
            "UPDATE head SET seq = ?, hash = (SELECT hash FROM events WHERE seq = ?) WHERE id = 1",
            (anchored - 4, anchored - 4),
        )
    with SqliteEventStore(cut, CATALOGUE, readonly=True) as store:
        assert store.verify().ok
        assert "cut short" in (check_anchor(store, anchor) or "")
    raise_export_limit(path, received_a1(path), recompute_chain=True)
    with SqliteEventStore(path, CATALOGUE, readonly=True) as store:
        assert store.verify().ok
        assert "rewritten" in (check_anchor(store, anchor) or "")


async def test_salvage_copies_the_verifiable_prefix_with_the_same_hashes(
    site: Path, autojump_clock: trio.abc.Clock
) -> None:
    await run_site(site, 60)
    path = site / "site.sep2gw"
    edited = received_a1(path)
    with SqliteEventStore(path, CATALOGUE, readonly=True) as store:
        (before_edit,) = [r.hash for r in store.read_raw(edited - 1)][:1]
    raise_export_limit(path, edited, recompute_chain=False)
    copied, head = salvage(path, site / "salvaged.sep2gw", CATALOGUE)
    assert copied == edited - 1 and head.seq == copied and head.hash == before_edit
    with SqliteEventStore(site / "salvaged.sep2gw", CATALOGUE, readonly=True) as store:
        assert store.verify().ok
    with pytest.raises(FileExistsError):
        salvage(path, site / "salvaged.sep2gw", CATALOGUE)


def set_aside_alarms(world: World) -> list[r.LogEvent]:
    server = world.server
    assert server is not None
    posted = [q.body for q in server.posts_to("/edev/1/lel") if q.status == 201]
    return [e for e in posted if isinstance(e, r.LogEvent) and "log set aside" in (e.details or "")]


async def test_a_log_set_aside_is_reported_once_to_the_servers_log_event_list(
    site: Path, autojump_clock: trio.abc.Clock
) -> None:
    """Issue 16 point 6 with PROTOCOL.md §2.9: the alarm for a log that did not verify reaches the
    utility as a LogEvent (profileID 2) POSTed to our EndDevice's LogEventList, with the reason,
    once (not again at the next start), and the report is recorded."""
    await run_site(site, 60)
    path = site / "site.sep2gw"
    raise_export_limit(path, received_a1(path), recompute_chain=False)
    world = await run_site(site, 120)
    (alarm,) = set_aside_alarms(world)
    assert alarm.profileID == 2 and alarm.details == "log set aside: chain broken"
    with SqliteEventStore(path, CATALOGUE, readonly=True) as store:
        reports = [e.event for e in store.read() if isinstance(e.event, LogSetAsideReported)]
    assert len(reports) == 1 and reports[0].set_aside_seq == 1
    assert reports[0].href == "/edev/1/lel" and reports[0].refused_status is None
    world = await run_site(site, 120)
    assert set_aside_alarms(world) == []


# -- the commands: sep2gw log verify (checkpoints, --certificate, --anchor), anchor, salvage -------

SITE_CONFIG = """
[server]
url = "https://127.0.0.1:9"
pin = 111115
[tls]
certificate = "pki/device.pem"
key = "pki/device.key"
ca = "pki/ca.pem"
[battery]
driver = "sunspec"
host = "127.0.0.1"
port = 9
[log]
path = "site.sep2gw"
"""


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "internal error" not in out + err
    return code, out, err


def site_config(site: Path) -> Path:
    (site / "pki" / "device.key").chmod(0o600)
    path = site / "site.toml"
    path.write_text(SITE_CONFIG)
    return path


async def test_log_verify_reports_what_the_signed_checkpoints_prove(
    site: Path, autojump_clock: trio.abc.Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 16 point 6: ``log verify`` checks the signatures against the device certificate:
    how many, by which LFDI, the last record covered; ``--certificate`` requires that signer."""
    await run_site(site, 120)
    path = str(site / "site.sep2gw")
    lfdi = signer_of(site).lfdi
    with SqliteEventStore(site / "site.sep2gw", CATALOGUE, readonly=True) as store:
        covered = check_checkpoints(store).last_through_seq
    code, out, err = cli(capsys, "log", "verify", path)
    assert code == OK, err
    assert f"signed checkpoint(s) by LFDI {lfdi} verified" in out
    assert f"the last covers records 1-{covered}" in out
    assert "warning" not in err
    code, out, err = cli(
        capsys, "log", "verify", path, "--certificate", str(site / "pki" / "device.pem")
    )
    assert code == OK, err
    code, _, err = cli(
        capsys, "log", "verify", path, "--certificate", str(site / "pki" / "server.pem")
    )
    assert code == CHECK_FAILED and "another certificate than the one given" in err, err


async def test_log_verify_fails_a_chain_recomputed_after_an_edit_by_its_signatures(
    site: Path, autojump_clock: trio.abc.Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    await run_site(site, 120)
    path = site / "site.sep2gw"
    raise_export_limit(path, received_a1(path), recompute_chain=True)
    code, _, err = cli(capsys, "log", "verify", str(path))
    assert code == CHECK_FAILED and "signed checkpoint at record" in err and "rewritten" in err


def test_a_log_without_checkpoints_verifies_with_a_warning_that_the_chain_alone_cannot_tell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "unsigned.sep2gw"
    with SqliteEventStore(path, CATALOGUE) as store:
        store.append_events(
            RUNTIME_STREAM,
            [GatewayStarted(software_version="x", rng_seed=1, clock_synced=False)],
            server_time=1.7e9,
            monotonic=0.0,
        )
    code, out, err = cli(capsys, "log", "verify", str(path))
    assert code == OK and "intact: 1 records" in out
    assert "warning: no signed checkpoint: the chain alone cannot tell" in err


async def test_log_anchor_then_verify_anchor_detects_a_log_cut_short_or_rewritten(
    site: Path, autojump_clock: trio.abc.Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 16 point 6: ``sep2gw log anchor`` signs the head with the device key as ``run``
    loads it; ``verify --anchor`` exits 3 on a copy cut short of it or rewritten."""
    await run_site(site, 60)
    path = site / "site.sep2gw"
    anchor = site / "anchor.json"
    config = str(site_config(site))
    code, out, err = cli(capsys, "log", "anchor", str(path), "--config", config, "-o", str(anchor))
    assert code == OK, err
    with SqliteEventStore(path, CATALOGUE, readonly=True) as store:
        head = store.head()
    assert f"anchored record {head.seq} (hash {head.hash.hex()})" in out
    code, out, err = cli(capsys, "log", "verify", str(path), "--anchor", str(anchor))
    assert code == OK and f"anchor: record {head.seq} with the hash signed by LFDI" in out, err
    code, _, err = cli(capsys, "log", "anchor", str(path), "--config", config, "-o", str(anchor))
    assert code == BAD_INPUT and "never overwritten" in err
    cut = site / "cut.sep2gw"
    shutil.copy(path, cut)
    with sqlite3.connect(cut) as conn:
        conn.execute("DELETE FROM events WHERE seq >= ?", (head.seq - 3,))
        conn.execute(
            "UPDATE head SET seq = ?, hash = (SELECT hash FROM events WHERE seq = ?) WHERE id = 1",
            (head.seq - 4, head.seq - 4),
        )
    conn.close()
    code, _, err = cli(capsys, "log", "verify", str(cut), "--anchor", str(anchor))
    assert code == CHECK_FAILED and "cut short" in err, err
    raise_export_limit(path, received_a1(path), recompute_chain=True)
    code, _, err = cli(capsys, "log", "verify", str(path), "--anchor", str(anchor))
    assert code == CHECK_FAILED, err  # the signed checkpoints already fail it
    code, _, err = cli(capsys, "log", "anchor", str(path), "--config", config)
    assert code == CHECK_FAILED and "not anchored" in err  # a tampered head is never vouched for


async def test_log_anchor_with_cert_and_key_prints_a_statement_the_verify_accepts(
    site: Path, autojump_clock: trio.abc.Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    await run_site(site, 60)
    path = str(site / "site.sep2gw")
    pki = site / "pki"
    code, out, err = cli(
        capsys,
        "log",
        "anchor",
        path,
        "--cert",
        str(pki / "device.pem"),
        "--key",
        str(pki / "device.key"),
    )
    assert code == OK, err
    anchor = site / "printed.json"
    anchor.write_text(out)
    code, out, err = cli(capsys, "log", "verify", path, "--anchor", str(anchor))
    assert code == OK and "anchor: record" in out, err
    code, _, err = cli(
        capsys,
        "log",
        "anchor",
        path,
        "--cert",
        str(pki / "device.pem"),
        "--key",
        str(pki / "server.key"),
    )
    assert code == BAD_INPUT and "does not match the certificate" in err


async def test_log_salvage_copies_the_verifiable_prefix_and_never_overwrites(
    site: Path, autojump_clock: trio.abc.Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    await run_site(site, 60)
    path = site / "site.sep2gw"
    edited = received_a1(path)
    raise_export_limit(path, edited, recompute_chain=False)
    new = site / "salvaged.sep2gw"
    code, out, err = cli(capsys, "log", "salvage", str(path), str(new))
    assert code == OK, err
    assert f"kept records 1-{edited - 1} of" in out and f"record {edited}:" in out
    code, _, err = cli(capsys, "log", "verify", str(new))
    assert code == OK, err
    before = digest(new)
    code, _, err = cli(capsys, "log", "salvage", str(path), str(new))
    assert code == BAD_INPUT and "never overwrites" in err
    assert digest(new) == before


# -- the fast start ------------------------------------------------------------------------------


def start_verdict(site: Path, certificate: Path) -> StartVerdict:
    return verify_for_start(
        site / "site.sep2gw",
        CATALOGUE,
        certificate_der=certificate_der(load_pem_chain(certificate.read_bytes())[0]),
        folded=_start_folded_tags(),
        recent=(TELEMETRY_TAG, POSTED_TAG),
        recent_s=_RECENT_READS_S,
    )


async def test_a_start_on_a_log_signed_by_this_device_verifies_from_its_checkpoint_on(
    site: Path, autojump_clock: trio.abc.Clock
) -> None:
    """Issue 16 point 6 ("a checkpoint keeps this fast on long logs"): a checkpoint this device
    signed, whose hash the log holds, vouches for the records before it; the start verifies what
    came after it in full. Another signer's checkpoint vouches for nothing: the whole log."""
    await run_site(site, 120)
    with SqliteEventStore(site / "site.sep2gw", CATALOGUE, readonly=True) as store:
        head = store.head()
    verdict = start_verdict(site, site / "pki" / "device.pem")
    assert verdict.ok and verdict.fast and verdict.records == head.seq
    other = start_verdict(site, site / "pki" / "server.pem")
    assert other.ok and not other.fast and other.records == head.seq


@pytest.mark.parametrize("recompute_chain", [False, True])
async def test_a_folded_record_edited_before_the_signed_one_fails_the_fast_start(
    site: Path, autojump_clock: trio.abc.Clock, recompute_chain: bool
) -> None:
    """An edit of a record the start folds breaks its own link (no recomputation) or the signed
    hash (recomputed to the end): the fast start does not vouch, and the whole verification names
    the record (or the checkpoint)."""
    await run_site(site, 120)
    path = site / "site.sep2gw"
    edited = received_a1(path)
    raise_export_limit(path, edited, recompute_chain=recompute_chain)
    verdict = start_verdict(site, site / "pki" / "device.pem")
    assert not verdict.ok and not verdict.fast
    if recompute_chain:
        assert verdict.finding is not None and "signed checkpoint" in verdict.finding
    else:
        assert verdict.records == edited - 1 and f"record {edited}:" in (verdict.finding or "")


async def test_a_folded_record_whose_link_alone_was_recomputed_fails_the_fast_start(
    site: Path, autojump_clock: trio.abc.Clock
) -> None:
    """With only the edited record's own hash recomputed, its successor's link breaks."""
    await run_site(site, 120)
    path = site / "site.sep2gw"
    edited = received_a1(path)
    raise_export_limit(path, edited, recompute_chain=False)
    with closing(sqlite3.connect(path)) as conn:
        (previous,) = conn.execute(
            "SELECT hash FROM events WHERE seq = ?", (edited - 1,)
        ).fetchone()
        row = conn.execute(ROWS + " WHERE seq = ?", (edited,)).fetchone()
        conn.execute("UPDATE events SET hash = ? WHERE seq = ?", (link(previous, *row), edited))
        conn.commit()
    verdict = start_verdict(site, site / "pki" / "device.pem")
    assert (
        not verdict.ok and not verdict.fast and f"record {edited + 1}:" in (verdict.finding or "")
    )

"""Issue 19, decision 0022f: the options a fleet sets on each site's gateway reach what they tune."""

from __future__ import annotations

from pathlib import Path

from actors.log_writer import LogWriter
from sep2gw import config as config_module
from sep2gw.cli import main
from sep2gw.exits import OK
from sep2gw.gateway import Gateway, GatewayOptions
from tests.sep2gw.commands.test_run import UNREACHABLE_SITE


async def test_a_fleets_site_log_bounds_its_page_cache(tmp_path: Path) -> None:
    assert main(["certs", "init", str(tmp_path / "pki")]) == OK
    site = tmp_path / "site.toml"
    site.write_text(UNREACHABLE_SITE.format(port=9))
    gateway = Gateway(config_module.load_config(site), options=GatewayOptions(log_cache_kib=128))
    assert gateway._lock is not None
    try:
        store = gateway._open_log()
        try:
            assert store.execute("PRAGMA cache_size").fetchone()[0] == -128
        finally:
            store.close()
    finally:
        gateway._lock.release()


def test_gateway_options_default_to_a_single_sites_log() -> None:
    options = GatewayOptions()
    assert options.detail_commit_s == 0.0
    assert options.log_cache_kib is None
    # What a gateway's writer is given by default: every sample committed as it is taken.
    assert LogWriter.__init__.__kwdefaults__ is not None
    assert LogWriter.__init__.__kwdefaults__["detail_commit_s"] == 0.0

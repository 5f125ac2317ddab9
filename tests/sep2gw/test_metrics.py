"""The gateway's /metrics and /health (sep2gw.metrics; issue 20 point 2): the exposition text
parses with Prometheus' own parser, the endpoint is off by default and on loopback unless the site
allows otherwise, and a running gateway serves what its log says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from actors.log_writer import LogWriterStatistics
from events.der_events import DerMemberStatus
from events.der_model import ControlSettings
from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE
from sep2gw.config import ConfigError, parse_config
from sep2gw.metrics import render_metrics
from sep2gw.simserver import demo_scenario
from sep2gw.status import BatteryWrite, Measured, SiteStatus, Stamped
from tests.sep2gw.world import CONFIG, World, deadline

T0 = 1_790_000_000.0


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_exposition_text_parses_and_says_what_the_status_says() -> None:
    status = SiteStatus(
        seq=42,
        at_s=T0 + 10,
        started=Stamped(what="1.0", at_s=T0, seq=1),
        registration="registered",
        comms="up",
        limits=ControlSettings(export_limit_w=1500.5, connect=False, ramp_time_s=10),
        limit_sources={"export_limit_w": "control:A1", "connect": "default:P"},
        last_poll=Stamped(what="/dcap", at_s=T0 + 5, seq=7),
        last_write=BatteryWrite(
            at_s=T0 + 6, seq=8, wrote=True, setpoint_w=-1200, site_limit_met=True
        ),
        measured=Measured(at_s=T0 + 9, seq=9, site_w=-1499.5, der_w=None, soc_pct=55),
        alarms=('over "temp"\nnow', "ground\\fault"),
    )
    text = render_metrics(
        status,
        now=T0 + 10,
        identity={"version": "1.0", "lfdi": "AB", "profile": "csip-aus", "nmi": ""},
        log=LogWriterStatistics(commits=3, events=40, largest_group=9, failed_requests=0),
    )
    got = _samples(text)
    assert got[("sep2gw_registered", ())] == 1
    assert got[("sep2gw_comms_up", ())] == 1
    assert got[("sep2gw_healthy", ())] == 0  # two alarms
    mode = (("mode", "export_limit_w"), ("source", "control:A1"))
    assert got[("sep2gw_control_in_force", mode)] == 1500.5
    assert got[("sep2gw_control_in_force", (("mode", "connect"), ("source", "default:P")))] == 0
    assert not any(
        k[0] == "sep2gw_control_in_force" and ("mode", "ramp_time_s") in k[1] for k in got
    )
    assert got[("sep2gw_last_poll_timestamp_seconds", ())] == T0 + 5
    assert ("sep2gw_last_post_timestamp_seconds", ()) not in got  # none yet: left out, not 0
    assert got[("sep2gw_battery_setpoint_watts", ())] == -1200
    assert got[("sep2gw_site_power_watts", ())] == -1499.5
    assert ("sep2gw_battery_power_watts", ()) not in got
    assert got[("sep2gw_battery_alarm", (("alarm", 'over "temp"\nnow'),))] == 1
    assert got[("sep2gw_battery_alarm", (("alarm", "ground\\fault"),))] == 1
    assert got[("sep2gw_log_events_total", ())] == 40
    assert (
        got[
            (
                "sep2gw_info",
                (("lfdi", "AB"), ("nmi", ""), ("profile", "csip-aus"), ("version", "1.0")),
            )
        ]
        == 1
    )


def _config(tmp_path: Path, extra: str) -> None:
    text = CONFIG.format(pin="", extra=extra)
    parse_config(text, source="site.toml", base_dir=tmp_path, check_files=False)


def test_the_endpoint_is_off_by_default_and_refused_off_loopback(tmp_path: Path) -> None:
    text = CONFIG.format(pin="", extra="")
    assert parse_config(text, source="s", base_dir=tmp_path, check_files=False).metrics.listen == ""
    _config(tmp_path, '[metrics]\nlisten = "127.0.0.1:9108"')
    _config(tmp_path, '[metrics]\nlisten = "[::1]:9108"')
    with pytest.raises(ConfigError, match=r"metrics.listen: 0.0.0.0 is not a loopback address"):
        _config(tmp_path, '[metrics]\nlisten = "0.0.0.0:9108"')
    _config(tmp_path, '[metrics]\nlisten = "0.0.0.0:9108"\nallow_remote = true')
    with pytest.raises(ConfigError, match=r"metrics.listen: '127.0.0.1:x': the port 'x' is not a"):
        _config(tmp_path, '[metrics]\nlisten = "127.0.0.1:x"')
    with pytest.raises(ConfigError, match=r"the port 70000 is not a TCP port"):
        _config(tmp_path, '[metrics]\nlisten = "127.0.0.1:70000"')


async def _get(port: int, path: str) -> tuple[int, bytes]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_a_running_gateway_serves_its_status(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, demo_scenario(), store, config_extra='[metrics]\nlisten = "127.0.0.1:0"')
    scraped: list[tuple[int, bytes, int, bytes]] = []

    async def scraper() -> None:
        await trio.sleep(1)  # virtual: the world has started its gateway by then
        gateway = world.gateways[0]
        await trio.sleep(120)
        assert gateway.metrics_port is not None
        code, metrics = await _get(gateway.metrics_port, "/metrics")
        health_code, health = await _get(gateway.metrics_port, "/health")
        scraped.append((code, metrics, health_code, health))

    with deadline(3600):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(scraper)
            await world.run(200)
    ((code, metrics, health_code, health),) = scraped
    assert code == 200
    got = _samples(metrics.decode())
    assert got[("sep2gw_registered", ())] == 1
    assert got[("sep2gw_comms_up", ())] == 1
    assert got[("sep2gw_log_seq", ())] > 10
    assert ("sep2gw_site_power_watts", ()) in got
    document = json.loads(health)
    assert document["registration"] == "registered" and document["comms"] == "up"
    assert health_code == 200 and document["healthy"] is True, document
    assert document["last_poll_age_s"] is not None


def test_run_refuses_a_metrics_address_off_loopback(capsys: pytest.CaptureFixture[str]) -> None:
    from sep2gw.cli import main

    assert main(["run", "--metrics", "0.0.0.0:9108"]) == 2
    err = capsys.readouterr().err
    assert "--metrics: 0.0.0.0 is not a loopback address" in err
    assert "metrics.allow_remote = true" in err


async def test_a_metrics_port_in_use_is_bad_configuration_naming_it(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    import socket

    from sep2gw.exits import first_leaf

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        world = World(
            pki,
            demo_scenario(),
            MemoryEventStore(CATALOGUE),
            config_extra=f'[metrics]\nlisten = "127.0.0.1:{port}"',
            check_fold=False,
        )
        with deadline(600), pytest.raises(BaseExceptionGroup) as raised:
            await world.run(60)
    error = first_leaf(raised.value, ConfigError)
    assert error is not None
    assert f"metrics.listen: cannot serve on 127.0.0.1:{port}: Address already in use" in str(error)


def test_the_price_in_force_is_a_metric_per_rate_and_status_line() -> None:
    """IEEE 2030.5 Pricing: the fold of ``pricing.rate_seen``/``pricing.price_in_force`` records
    gives each rate's price in force; /metrics shows it per kWh, ``status`` in words."""
    from events.envelope import Recorded
    from events.pricing_events import PriceBlock, PriceInForce, RateDetails, RateSeen
    from sep2gw.commands.status import _lines
    from sep2gw.status import fold

    rate = RateDetails(
        tariff_mrid="T1",
        tariff_href="/tp/1",
        tariff_primacy=1,
        currency=36,
        price_power_of_ten=-3,
        rate_mrid="R1",
        rate_href="/tp/1/rc/1",
        rate_code="TOU",
        uom=72,
        reading_power_of_ten=3,
        flow_direction=1,
    )
    events = [
        RateSeen(rate=rate, at_s=1.0),
        PriceInForce(
            rate_mrid="R1",
            interval_mrid="I1",
            tou_tier=3,
            blocks=(PriceBlock(consumption_block=1, start_value=0, price=450),),
            at_s=2.0,
        ),
    ]
    records = [
        Recorded(i + 1, "pricing", i + 1, e.at_s, e.at_s, e, b"") for i, e in enumerate(events)
    ]
    status = fold(records)
    (price,) = status.prices
    assert price.per_kwh == pytest.approx(0.45) and price.seq == 2
    samples = _samples(render_metrics(status, now=3.0, identity={}, log=None))
    key = ("sep2gw_price_per_kwh", (("currency", "36"), ("flow", "import"), ("rate", "R1")))
    assert samples[key] == pytest.approx(0.45)
    assert (
        "price",
        "TOU (import): 0.45 AUD/kWh (tier 3) since 1970-01-01T00:00:02Z (record 2)",
    ) in (_lines(status))
    # the interval ends: the price is gone from the metrics, the status says none
    ended = fold(
        [
            Recorded(
                3,
                "pricing",
                3,
                4.0,
                4.0,
                PriceInForce(rate_mrid="R1", interval_mrid=None, at_s=4.0),
                b"",
            )
        ],
        status,
    )
    assert "sep2gw_price_per_kwh" not in {
        name for name, _labels in _samples(render_metrics(ended, now=5.0, identity={}, log=None))
    }
    assert any(line == "price" and "none in force" in text for line, text in _lines(ended))


def test_issue19_each_der_of_a_site_of_several_has_an_availability_series() -> None:
    from events.envelope import Recorded
    from sep2gw.status import fold

    events = [
        DerMemberStatus(at_s=1.0, der="bat1", available=True, reachable=True),
        DerMemberStatus(at_s=1.0, der="bat2", available=True, reachable=True),
        DerMemberStatus(
            at_s=2.0, der="bat2", available=False, reachable=False, reason="read telemetry: x"
        ),
    ]
    records = [
        Recorded(i + 1, "hardware", i + 1, e.at_s, e.at_s, e, b"") for i, e in enumerate(events)
    ]
    status = fold(records)
    samples = _samples(render_metrics(status, now=3.0, identity={}, log=None))
    assert samples[("sep2gw_der_available", (("der", "bat1"),))] == 1
    assert samples[("sep2gw_der_available", (("der", "bat2"),))] == 0
    assert status.ders["bat2"].since_s == 2.0
    single = _samples(render_metrics(SiteStatus(), now=3.0, identity={}, log=None))
    assert not any(name == "sep2gw_der_available" for name, _ in single)

"""The gateway's ``/metrics`` (Prometheus text exposition format 0.0.4) and ``/health`` (JSON), both
rendered on request from the status fold (``sep2gw.status``) and the log writer's statistics: a
scrape costs the gateway nothing between scrapes (issue 20 point 2).

Metric names follow Prometheus' conventions: base units in the name (``_watts``, ``_seconds``,
``_percent``), ``_total`` for counters, ``_timestamp_seconds`` for an instant (UTC epoch seconds on
the utility server's clock, as the log's times). A value the log does not hold yet (no poll so far,
no measurement) is left out rather than shown as 0.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Final

from actors.http_endpoint import Reply
from actors.log_writer import LogWriterStatistics
from sep2gw.status import SiteStatus, health

__all__ = ["CONTENT_TYPE", "render_metrics", "router"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    """A label value as the exposition format writes it (backslash, double quote, line feed)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def metric(
        self,
        name: str,
        kind: str,
        help_: str,
        samples: list[tuple[dict[str, str], float]] | float | bool | None,
    ) -> None:
        if samples is None:
            return
        if not isinstance(samples, list):
            samples = [({}, float(samples))]
        if not samples:
            return
        self.lines.append(f"# HELP {name} {help_}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            self.lines.append(
                f"{name}{{{label_text}}} {_number(value)}" if labels else f"{name} {_number(value)}"
            )


def _number(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def render_metrics(
    status: SiteStatus,
    *,
    now: float,
    identity: dict[str, str],
    log: LogWriterStatistics | None,
) -> str:
    """The exposition text for one scrape (see the module docstring for the names)."""
    w = _Writer()
    w.metric("sep2gw_info", "gauge", "Software version and site identity.", [(identity, 1)])
    healthy, _ = health(status, now=now)
    w.metric("sep2gw_healthy", "gauge", "1 when /health says healthy.", healthy)
    if status.started is not None:
        w.metric(
            "sep2gw_start_timestamp_seconds",
            "gauge",
            "When the gateway started (server time).",
            status.started.at_s,
        )
    w.metric(
        "sep2gw_registered",
        "gauge",
        "1 once the registration walk is done (PROTOCOL.md section 2).",
        status.registration == "registered",
    )
    w.metric(
        "sep2gw_registration_halted",
        "gauge",
        "1 when registration halted (a PIN mismatch, a server fault).",
        status.registration == "halted",
    )
    w.metric(
        "sep2gw_comms_up", "gauge", "1 while the utility server is reachable.", status.comms == "up"
    )
    limits: list[tuple[dict[str, str], float]] = []
    for mode, value in sorted(_numeric(status).items()):
        limits.append(({"mode": mode, "source": status.limit_sources.get(mode, "")}, value))
    w.metric(
        "sep2gw_control_in_force",
        "gauge",
        "Arbitrated control values in force, by mode (W, %, or 1/0 for connect/energize).",
        limits,
    )
    prices: list[tuple[dict[str, str], float]] = []
    for price in status.prices:
        per_kwh = price.per_kwh
        if per_kwh is not None and price.rate is not None:
            flow = {1: "import", 19: "export"}.get(price.rate.flow_direction or 1, "import")
            labels = {"rate": price.rate_mrid, "flow": flow, "currency": str(price.rate.currency)}
            prices.append((labels, per_kwh))
    w.metric(
        "sep2gw_price_per_kwh",
        "gauge",
        "The utility's price in force per kWh (IEEE 2030.5 Pricing), by rate; none: no interval.",
        prices,
    )
    w.metric(
        "sep2gw_subscriptions",
        "gauge",
        "Subscriptions held on the utility's resources (IEEE 2030.5 Subscription/Notification).",
        len(status.subscriptions),
    )
    w.metric(
        "sep2gw_notifications_refused_total",
        "counter",
        "Notifications the listener refused (malformed, unknown subscription, too large).",
        status.notifications_refused,
    )
    for name, stamp, help_ in (
        (
            "sep2gw_last_notification_timestamp_seconds",
            status.last_notification,
            "The last notification accepted.",
        ),
        ("sep2gw_last_poll_timestamp_seconds", status.last_poll, "The last poll of the server."),
        ("sep2gw_last_post_timestamp_seconds", status.last_post, "The last readings posted."),
        (
            "sep2gw_last_battery_write_timestamp_seconds",
            status.last_write,
            "The last application of the limits to the battery.",
        ),
    ):
        w.metric(name, "gauge", help_, None if stamp is None else stamp.at_s)
    write = status.last_write
    if write is not None:
        w.metric(
            "sep2gw_battery_setpoint_watts",
            "gauge",
            "The last power setpoint written to the battery.",
            write.setpoint_w,
        )
        w.metric(
            "sep2gw_site_limit_met",
            "gauge",
            "1 when the site met its export/import limit at the last write.",
            write.site_limit_met,
        )
    m = status.measured
    if m is not None:
        w.metric("sep2gw_site_power_watts", "gauge", "Site meter active power.", m.site_w)
        w.metric("sep2gw_battery_power_watts", "gauge", "Battery active power.", m.der_w)
        w.metric("sep2gw_battery_soc_percent", "gauge", "Battery state of charge.", m.soc_pct)
        w.metric("sep2gw_last_measurement_timestamp_seconds", "gauge", "The newest sample.", m.at_s)
    w.metric(
        "sep2gw_battery_reachable",
        "gauge",
        "0 while the battery does not answer.",
        status.device_unreachable is None,
    )
    w.metric(
        "sep2gw_battery_alarm",
        "gauge",
        "Alarms the battery reports, one series per active alarm.",
        [({"alarm": alarm}, 1) for alarm in status.alarms],
    )
    w.metric(
        "sep2gw_battery_alarms", "gauge", "How many alarms the battery reports.", len(status.alarms)
    )
    if status.ders:  # a site of several DER (issue 19): one series per DER
        w.metric(
            "sep2gw_der_available",
            "gauge",
            "1 while the DER takes its share of the site's limits; 0 while it is left out.",
            [({"der": name}, der.available) for name, der in status.ders.items()],
        )
    w.metric(
        "sep2gw_actor_failures_total",
        "counter",
        "Actor failures recorded in the log (each is a restart of the gateway's actors).",
        status.actor_failures,
    )
    w.metric("sep2gw_log_seq", "gauge", "The newest record of the event log.", status.seq)
    w.metric(
        "sep2gw_log_short_of_space",
        "gauge",
        "1 while the event log is short of space (telemetry detail shed).",
        status.log_short is not None,
    )
    if log is not None:
        w.metric(
            "sep2gw_log_commits_total", "counter", "Log transactions since start.", log.commits
        )
        w.metric("sep2gw_log_events_total", "counter", "Records written since start.", log.events)
        w.metric(
            "sep2gw_log_shed_total",
            "counter",
            "Records not written because the log was short of space or full.",
            log.shed,
        )
    return "\n".join(w.lines) + "\n"


def _numeric(status: SiteStatus) -> dict[str, float]:
    """The modes in force with a single number (curves are hrefs, power factors structs)."""
    values: dict[str, float] = {}
    for name in status.limits.__struct_fields__:
        value = getattr(status.limits, name)
        if isinstance(value, bool):
            values[name] = float(value)
        elif isinstance(value, int | float) and name != "ramp_time_s":
            values[name] = float(value)
    return values


def router(
    status: Callable[[], SiteStatus],
    now: Callable[[], float],
    *,
    identity: dict[str, str],
    log: Callable[[], LogWriterStatistics | None],
) -> Callable[[str], Reply | None]:
    """The endpoint's routes: ``/metrics``; ``/health`` (200 healthy, 503 not, JSON either way)."""

    def route(path: str) -> Reply | None:
        if path == "/metrics":
            text = render_metrics(status(), now=now(), identity=identity, log=log())
            return Reply(200, CONTENT_TYPE, text.encode())
        if path == "/health":
            healthy, document = health(status(), now=now())
            body = json.dumps(document, indent=1).encode() + b"\n"
            return Reply(200 if healthy else 503, "application/json", body)
        if path == "/":
            return Reply(200, "text/plain", b"sep2gw: /metrics (Prometheus), /health (JSON)\n")
        return None

    return route

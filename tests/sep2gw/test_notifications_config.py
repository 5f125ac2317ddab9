"""The ``[notifications]`` section (issue 19 point 3): off by default; every problem names its key,
and ``check-config`` exits 2 for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from sep2gw.cli import main
from sep2gw.config import ConfigError, load_config
from tests.sep2gw.test_config import GOOD, site, write

__all__ = ["site"]


def test_notifications_are_off_unless_a_url_is_given(site: Path) -> None:
    config = load_config(write(site, GOOD))
    assert config.notifications.url == "" and config.notifications.listen == ""


def test_a_complete_section_loads(site: Path) -> None:
    config = load_config(
        write(
            site,
            GOOD
            + '\n[notifications]\nurl = "https://gw.example.net:8443/notify"\n'
            'listen = "0.0.0.0:8443"\nmax_subscriptions = 10\n',
        )
    )
    assert config.notifications.url == "https://gw.example.net:8443/notify"
    assert config.notifications.listen == "0.0.0.0:8443"
    assert config.notifications.max_subscriptions == 10


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ('url = "http://gw/notify"', "notifications.url: 'http://gw/notify' must be an https://"),
        ('url = "https://gw"', "notifications.url: 'https://gw' needs a path"),
        ('listen = "0.0.0.0:8443"', "notifications.listen: set notifications.url too"),
        (
            'url = "https://gw/n"\nlisten = "0.0.0.0:99999"',
            "notifications.listen: '0.0.0.0:99999': the port 99999 is not a TCP port",
        ),
        ('url = "https://gw/n"\nmax_connections = 0', "notifications.max_connections: 0 is outside"),
        ('url = "https://gw/n"\nmax_body_bytes = 10', "notifications.max_body_bytes: 10 is outside"),
        ('url = "https://gw/n"\nverify_period_s = 5', "notifications.verify_period_s: 5 is below 60"),
        ('url = "https://gw/n"\nconnection_timeout_s = 0', "notifications.connection_timeout_s"),
        ('uri = "https://gw/n"', "uri"),
    ],
)
def test_each_problem_names_its_key(site: Path, section: str, problem: str) -> None:
    path = write(site, f"{GOOD}\n[notifications]\n{section}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert any(problem in p for p in info.value.problems), info.value.problems
    assert main(["check-config", str(path)]) == 2


def test_status_and_metrics_show_subscriptions_and_notifications() -> None:
    """The status fold (``sep2gw status``, ``/metrics``) follows the subscription records."""
    from events.envelope import Append
    from events.memory_store import MemoryEventStore
    from events.registry import CATALOGUE
    from events.subscription_events import (
        NotificationReceived,
        SubscriptionAccepted,
        SubscriptionLost,
    )
    from sep2gw.commands.status import _lines as status_lines
    from sep2gw.metrics import render_metrics
    from sep2gw.status import status_of_store

    def notified(status: int, reason: str = "") -> NotificationReceived:
        return NotificationReceived(
            subscription="/sub/1", resource="/derc", status=0, inline=False, body_bytes=300,
            http_status=status, reason=reason, peer_lfdi="AB", at_s=150.0,
        )

    store = MemoryEventStore(CATALOGUE)
    for event in (
        SubscriptionAccepted(resource="/edev/1", location="/sub/1", at_s=101.0),
        SubscriptionAccepted(resource="/derc", location="/sub/2", at_s=102.0),
        SubscriptionLost(
            resource="/edev/1", location="/sub/1", why="404", losses=1, retry_at_s=103.0,
            at_s=103.0,
        ),
        notified(201),
        notified(404, "no subscription of ours"),
    ):
        store.append(
            [Append(stream="subscription", events=(event,), server_time=150.0, monotonic=1.0)]
        )
    status = status_of_store(store)
    assert status.subscriptions == ("/derc",)
    assert status.last_notification is not None and status.last_notification.seq == 4
    assert status.notifications_refused == 1
    text = render_metrics(status, now=200.0, identity={}, log=None)
    assert "sep2gw_subscriptions 1" in text
    assert "sep2gw_notifications_refused_total 1" in text
    assert "sep2gw_last_notification_timestamp_seconds 150" in text
    lines = dict(status_lines(status))
    assert lines["subscriptions"] == (
        "1 held; last notification: 1970-01-01T00:02:30Z /derc changed (record 4); 1 refused"
    )

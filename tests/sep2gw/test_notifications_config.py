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

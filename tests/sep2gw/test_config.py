"""Configuration: every problem is reported with the key it concerns."""

from __future__ import annotations

from pathlib import Path

import pytest

from sep2gw.cli import main
from sep2gw.config import ConfigError, load_config

GOOD = """
[server]
url = "https://derms.example.net:8443"
dcap_path = "/api/v2/dcap"
pin = 111115
profile = "sapn"

[tls]
certificate = "certs/device.pem"
key = "certs/device.key"
ca = "certs/serca.pem"

[site]
nmi = "4407123456"

[battery]
driver = "sunspec"
host = "192.0.2.10"
unit_id = 3

[rates]
default_poll_s = 60

[log]
path = "site.sep2gw"
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "certs").mkdir()
    for name in ("device.pem", "device.key", "serca.pem"):
        (tmp_path / "certs" / name).write_text("-----BEGIN-----\n")
    return tmp_path


def write(site: Path, text: str) -> Path:
    path = site / "site.toml"
    path.write_text(text)
    return path


def test_a_complete_file_loads_with_paths_relative_to_it(site: Path) -> None:
    config = load_config(write(site, GOOD))
    assert config.server.profile == "sapn" and config.server.pin == 111115
    assert config.battery.unit_id == 3 and config.battery.port == 502
    assert config.rates.default_poll_s == 60 and config.rates.default_post_s == 300
    assert config.path(config.tls.ca) == site / "certs" / "serca.pem"
    assert config.path(config.log.path) == site / "site.sep2gw"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            ('profile = "sapn"', 'profile = "nz"'),
            "server.profile: 'nz' is not one of the allowed values",
        ),
        (("unit_id = 3", 'unit_id = "3"'), "battery.unit_id: expected `int`, got `str`"),
        (("unit_id = 3", "unit_id = 300"), "battery.unit_id: 300 is not a Modbus unit id"),
        (("unit_id = 3", "unitid = 3"), "battery.unitid: unknown key (misspelt?)"),
        (
            ("https://derms", "http://derms"),
            "server.url: 'http://derms.example.net:8443' must be an https:// URL",
        ),
        (
            ('dcap_path = "/api/v2/dcap"', 'dcap_path = "api"'),
            "server.dcap_path: 'api' must start with '/'",
        ),
        (("pin = 111115", "pin = 12345678"), "server.pin: 12345678 is not a registration PIN"),
        (
            ("pin = 111115", "pin = 111116"),
            "server.pin: 111116 has a wrong check digit: after 11111 it must be 5",
        ),
        (
            ('nmi = "4407123456"', 'nmi = "44-07"'),
            "site.nmi: '44-07' is not a 10 or 11 character NMI",
        ),
        (
            ("default_poll_s = 60", "default_poll_s = 0"),
            "rates.default_poll_s: must be positive, got 0",
        ),
        (('host = "192.0.2.10"', 'host = "bad host!"'), "battery.host: 'bad host!' is neither"),
        (("certs/serca.pem", "certs/missing.pem"), "tls.ca: "),
        (('path = "site.sep2gw"', 'path = "nowhere/site.sep2gw"'), "log.path: the folder"),
        (("[log]", "[log\n"), "not valid TOML"),
        (
            ('nmi = "4407123456"', 'nmi = "4407123456"\ntime_zone = "Mars/Olympus"'),
            "site.time_zone: 'Mars/Olympus': not a time zone",
        ),
        (
            ('profile = "sapn"', 'profile = "sapn"\ncsipaus_versions = ["v1.2", "v2"]'),
            "server.csipaus_versions: 'v2' is not a CSIP-AUS version the 'sapn' profile allows",
        ),
        (
            ('profile = "sapn"', 'profile = "2018"\ncsipaus_versions = ["v1.3"]'),
            "server.csipaus_versions: 'v1.3' is not a CSIP-AUS version the '2018' profile allows",
        ),
        (
            ('profile = "sapn"', 'profile = "sapn"\ncsipaus_versions = ["v1.3", "v1.3"]'),
            "server.csipaus_versions: a version is named twice",
        ),
        (
            ('profile = "sapn"', 'profile = "sapn"\nwell_known = "yes"'),
            "server.well_known: expected `bool | null`, got `str`",
        ),
    ],
)
def test_each_problem_names_its_key(site: Path, change: tuple[str, str], problem: str) -> None:
    old, new = change
    assert old in GOOD
    with pytest.raises(ConfigError) as info:
        load_config(write(site, GOOD.replace(old, new)))
    assert any(problem in p for p in info.value.problems), info.value.problems
    assert str(info.value).startswith(f"{site / 'site.toml'}: ")


def test_the_csipaus_versions_narrow_the_profiles_in_its_order(site: Path) -> None:
    """Issue 18 point 2: the profile gives the allowed versions; the site may narrow them."""
    from sep2gw.profiles import PROFILES, allowed_versions

    text = GOOD.replace('profile = "sapn"', 'profile = "sapn"\ncsipaus_versions = ["v1.3", "v1.2"]')
    config = load_config(write(site, text))
    narrowed = allowed_versions(PROFILES["sapn"], config.server.csipaus_versions)
    assert [v.name for v in narrowed] == ["v1.2", "v1.3"]
    assert [v.name for v in allowed_versions(PROFILES["csip-aus"])] == [
        "v1.2",
        "v1.3-beta/storage",
        "v1.3",
    ]
    assert PROFILES["csip-aus"].well_known and not PROFILES["2030.5"].well_known


def test_a_missing_section_is_named(site: Path) -> None:
    text = GOOD[: GOOD.index("[battery]")] + GOOD[GOOD.index("[rates]") :]
    with pytest.raises(ConfigError, match="battery: required key is missing"):
        load_config(write(site, text))


def test_several_problems_are_reported_together(site: Path) -> None:
    text = GOOD.replace("unit_id = 3", "unit_id = 300").replace(
        "default_poll_s = 60", "default_poll_s = -1"
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(site, text))
    assert len(info.value.problems) == 2


def test_a_file_that_is_not_utf_8_is_named_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "latin.toml"
    bad.write_bytes(b"[server]\nurl = 'https://x/\xe9'\n")
    with pytest.raises(ConfigError, match=r"latin.toml: not UTF-8 text \(byte 26: 0xe9\)"):
        load_config(bad)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.toml: cannot read the file"):
        load_config(tmp_path / "nope.toml")


def test_check_config_command(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # check-config loads the identity as run does: it needs real certificates, not placeholders
    assert main(["certs", "init", str(site / "pki")]) == 0
    for name, made in (
        ("device.pem", "device.pem"),
        ("device.key", "device.key"),
        ("serca.pem", "ca.pem"),
    ):
        (site / "certs" / name).write_bytes((site / "pki" / made).read_bytes())
    (site / "certs" / "device.key").chmod(0o600)
    path = write(site, GOOD)
    assert main(["check-config", str(path)]) == 0
    assert "192.0.2.10:502 unit 3" in capsys.readouterr().out
    write(site, GOOD.replace("unit_id = 3", "unit_id = 300"))
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "1 problem(s)" in err and "battery.unit_id" in err


def test_check_config_loads_the_identity_run_would_load(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The placeholders of the fixture are files but no certificates: run could not use them."""
    path = write(site, GOOD)
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "tls.certificate: " in err and "is not a PEM certificate" in err
    assert "tls.ca: " in err and "tls.key: " in err

"""Issue 19 point 2: a site with several DER lists them as ``[[ders]]``; ``[battery]`` still means
one DER; every problem names the entry and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.drivers.composite import CompositeDriver
from actors.drivers.sunspec import SunSpecDriver
from sep2gw.config import ConfigError, load_config
from sep2gw.gateway import composite_from_config, driver_from_config
from sep2gw.preflight import check_driver
from tests.sep2gw.test_config import GOOD, write

BATTERY = GOOD[GOOD.index("[battery]") : GOOD.index("[rates]")]
TWO = GOOD.replace(
    BATTERY,
    """[[ders]]
name = "bat-house"
driver = "sunspec"
host = "192.0.2.10"

[[ders]]
name = "bat-shed"
driver = "sunspec"
host = "192.0.2.11"
unit_id = 2
href = "/edev/3/der/7"

""",
)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "certs").mkdir()
    for name in ("device.pem", "device.key", "serca.pem"):
        (tmp_path / "certs" / name).write_text("-----BEGIN-----\n")
    return tmp_path


def test_a_battery_section_is_one_der_named_battery(site: Path) -> None:
    config = load_config(write(site, GOOD))
    (der,) = config.der_list()
    assert (der.name, der.role, der.host, der.unit_id, der.href) == (
        "battery",
        "battery",
        "192.0.2.10",
        3,
        None,
    )
    assert isinstance(driver_from_config(config), SunSpecDriver)


def test_several_ders_load_in_order_with_their_own_devices(site: Path) -> None:
    config = load_config(write(site, TWO))
    assert config.battery is None
    assert [(d.name, d.host, d.unit_id, d.href) for d in config.der_list()] == [
        ("bat-house", "192.0.2.10", 1, None),
        ("bat-shed", "192.0.2.11", 2, "/edev/3/der/7"),
    ]
    driver = driver_from_config(config)
    assert isinstance(driver, CompositeDriver)
    assert [m.der for m in driver.members()] == ["bat-house", "bat-shed"]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (('name = "bat-shed"', 'name = "bat-house"'), "ders[1].name: 'bat-house' is already"),
        (('name = "bat-shed"', 'name = "Bat Shed"'), "ders[1].name: 'Bat Shed' is not a DER name"),
        (('host = "192.0.2.11"\n', ""), "ders[1].host: required when ders[1].driver is 'sunspec'"),
        (("unit_id = 2", "unit_id = 256"), "ders[1].unit_id: 256 is not a Modbus unit id"),
        (('href = "/edev/3/der/7"', 'href = "der/7"'), "ders[1].href: 'der/7' must be a path"),
        (('href = "/edev/3/der/7"', 'role = "wind"'), "ders[1].role: "),
        (('href = "/edev/3/der/7"', 'hrfe = "/x"'), "ders[1].hrfe: unknown key (misspelt?)"),
        (('name = "bat-shed"\n', ""), "ders[1].name: required key is missing"),
    ],
)
def test_a_bad_der_entry_is_named(site: Path, change: tuple[str, str], problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(site, TWO.replace(*change)))
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems


def test_a_der_href_named_twice_is_refused(site: Path) -> None:
    text = TWO.replace('name = "bat-shed"', 'name = "bat-shed"\nhref = "/edev/3/der/7"', 1)
    text = text.replace('name = "bat-house"', 'name = "bat-house"\nhref = "/edev/3/der/7"')
    text = text.replace('unit_id = 2\nhref = "/edev/3/der/7"', "unit_id = 2")
    with pytest.raises(ConfigError, match=r"ders\[1\]\.href: '/edev/3/der/7' is already the href"):
        load_config(write(site, text))


def test_battery_and_ders_together_are_refused(site: Path) -> None:
    text = TWO.replace("[rates]", BATTERY + "[rates]")
    with pytest.raises(ConfigError, match=r"ders: give either \[battery\]"):
        load_config(write(site, text))


def test_neither_battery_nor_ders_is_named(site: Path) -> None:
    text = GOOD.replace(BATTERY, "")
    with pytest.raises(ConfigError, match=r"battery: required key is missing \(or list"):
        load_config(write(site, text))


def test_preflight_names_each_der_run_cannot_drive(site: Path) -> None:
    text = TWO.replace('driver = "sunspec"\nhost = "192.0.2.11"', 'driver = "simulated"')
    findings = check_driver(load_config(write(site, text)))
    assert [f.key for f in findings] == ["ders[1].driver"]


def test_an_embedding_application_hands_one_driver_per_der_by_name(site: Path) -> None:
    config = load_config(write(site, TWO))
    plain = driver_from_config(config)
    assert isinstance(plain, CompositeDriver)
    members = {m.der: m for m in plain.members()}
    assert set(members) == {"bat-house", "bat-shed"}
    with pytest.raises(ValueError, match="no driver for bat-shed; no DER configured as bat-gar"):
        composite_from_config(config, {"bat-house": object(), "bat-gar": object()})  # type: ignore[dict-item]


def test_the_readme_example_of_several_ders_loads(site: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Several DER at one site\n") :]
    example = section[section.index("```toml\n") + 8 : section.index("```\n", 8)]
    config = load_config(write(site, GOOD.replace(BATTERY, example)))
    assert [(d.name, d.role, d.href) for d in config.der_list()] == [
        ("house", "battery", None),
        ("shed", "battery", "/edev/3/der/2"),
    ]

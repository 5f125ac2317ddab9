"""Fleet configuration (issue 19 point 1): one TOML, many sites, each a single-site Config."""

from __future__ import annotations

from pathlib import Path

import pytest

from sep2gw.cli import main
from sep2gw.config import ConfigError
from sep2gw.fleet_config import is_fleet_file, parse_fleet_config, site_identities
from transport.identity import CSIP_AUS, lfdi_from_der, sfdi_from_lfdi, site_lfdi
from transport.pki import certificate_der, load_pem_chain

HEAD = """
[fleet]
name = "vpp-east"
pen = 37244

[server]
url = "https://derms.example.net:8443"
pin = 111115

[tls]
certificate = "pki/device.pem"
key = "pki/device.key"
ca = "pki/ca.pem"

[log]
dir = "logs"
"""


def site(name: str, extra: str = "") -> str:
    return f"""
[[sites]]
name = "{name}"
{extra}
[sites.battery]
driver = "sunspec"
host = "10.8.0.12"
"""


@pytest.fixture(scope="module")
def folder(pki: Path) -> Path:
    (pki / "logs").mkdir(exist_ok=True)
    if not (pki / "own" / "device.pem").exists():
        assert main(["certs", "init", str(pki / "own")]) == 0
    return pki


def parse(folder: Path, text: str):  # type: ignore[no-untyped-def]
    return parse_fleet_config(text, source="fleet.toml", base_dir=folder)


def lfdi_of(path: Path) -> str:
    chain = load_pem_chain(path.read_bytes())
    return lfdi_from_der(certificate_der(chain[0]), CSIP_AUS)


def test_a_file_with_sites_is_a_fleet() -> None:
    assert is_fleet_file(HEAD + site("a"))
    assert not is_fleet_file(HEAD)


def test_each_site_becomes_a_single_site_config_with_its_own_log(folder: Path) -> None:
    fleet = parse(folder, HEAD + site("smith-st-12", 'nmi = "4102345678"\npin = 222220'))
    config = fleet.site_config(0)
    assert config.log.path == str(Path("logs") / "smith-st-12.sep2gw")
    assert config.path(config.log.path) == folder / "logs" / "smith-st-12.sep2gw"
    assert (config.site.nmi, config.site.pen, config.server.pin) == ("4102345678", 37244, 222220)
    assert config.tls == fleet.tls  # the aggregator certificate
    assert config.battery.host == "10.8.0.12"


def test_site_lfdi_rule_own_certificate_then_given_then_derived(folder: Path) -> None:
    given = "0123456789ABCDEF0123456789ABCDEF01234567"
    fleet = parse(
        folder,
        HEAD
        + site("derived")
        + site("given", f'lfdi = "{given.lower()}"')
        + site("own", 'certificate = "own/device.pem"\nkey = "own/device.key"'),
    )
    derived, chosen, own = site_identities(fleet)
    aggregator = lfdi_of(folder / "pki" / "device.pem")
    assert derived.lfdi == site_lfdi(aggregator, "derived", 37244, CSIP_AUS)
    assert derived.lfdi.endswith("00037244")  # CSIP-AUS: the PEN as 8 decimal digits
    assert derived.sfdi == sfdi_from_lfdi(derived.lfdi)
    assert (chosen.lfdi, chosen.own_certificate) == (given, False)
    assert (own.lfdi, own.own_certificate) == (lfdi_of(folder / "own" / "device.pem"), True)
    assert fleet.site_config(2).tls.certificate == "own/device.pem"


def test_derived_lfdis_are_stable_and_differ_per_site(folder: Path) -> None:
    one = site_identities(parse(folder, HEAD + site("a") + site("b")))
    again = site_identities(parse(folder, HEAD + site("b") + site("a")))
    assert {i.name: i.lfdi for i in one} == {i.name: i.lfdi for i in again}
    assert one[0].lfdi != one[1].lfdi and one[0].sfdi != one[1].sfdi


def test_duplicate_names_and_lfdis_are_refused_naming_the_site(folder: Path) -> None:
    lfdi = 'lfdi = "' + "AB" * 20 + '"'
    with pytest.raises(ConfigError) as names:
        parse(folder, HEAD + site("a") + site("a"))
    assert names.value.problems == ["sites[1].name: 'a' is also sites[0]'s name"]
    with pytest.raises(ConfigError) as lfdis:
        parse(folder, HEAD + site("a", lfdi) + site("b", lfdi))
    assert lfdis.value.problems == [
        f"sites[1].lfdi: {'AB' * 20} is also sites[0]'s LFDI (one EndDevice per site)"
    ]


def test_errors_name_the_site_and_the_key(folder: Path) -> None:
    bad = (
        HEAD
        + site("ok")
        + site("Bad Name")
        + site("c", 'lfdi = "12"\nnmi = "x"\npin = 123456')
        + site("d", 'certificate = "own/device.pem"')
        + site("e", 'key_password_env = "KEY_PASSWORD"')
    )
    with pytest.raises(ConfigError) as refused:
        parse(folder, bad)
    problems = refused.value.problems
    assert any(p.startswith("sites[1].name: 'Bad Name' is not a site name") for p in problems)
    assert "sites[2].lfdi: '12' is not an LFDI (40 hex digits)" in problems
    assert "sites[2].nmi: 'x' is not a 10 or 11 character NMI" in problems
    assert any(
        p.startswith("sites[2].pin (or server.pin): 123456 has a wrong check digit")
        for p in problems
    )
    assert "sites[3]: `certificate` and `key` go together (a site's own identity)" in problems
    assert any(p.startswith("sites[4].key_password_env: only for a site's own") for p in problems)


def test_shared_problems_are_named_once(folder: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        parse(folder, HEAD.replace("https://", "http://") + site("a") + site("b"))
    assert [p for p in refused.value.problems if p.startswith("server.url")] == [
        "server.url: 'http://derms.example.net:8443' must be an https:// URL with a host "
        "(2030.5 requires TLS)"
    ]


def test_a_missing_log_folder_is_named(folder: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        parse(folder, HEAD.replace('dir = "logs"', 'dir = "nowhere"') + site("a"))
    assert refused.value.problems == [f"log.dir: the folder {folder / 'nowhere'} does not exist"]


def test_a_fleet_needs_sites(folder: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        parse(folder, "sites = []\n" + HEAD)
    assert refused.value.problems == ["sites: a fleet needs at least one [[sites]] entry"]


def test_each_site_gets_its_own_notification_uri_and_no_listener_of_its_own(
    folder: Path,
) -> None:
    fleet = parse(
        folder,
        HEAD
        + '[notifications]\nurl = "https://agg.example.net:8443/notify/"\n'
        + 'listen = "127.0.0.1:0"\nmax_connections = 100\n'
        + site("north-1")
        + site("south-2"),
    )
    first, second = fleet.site_config(0), fleet.site_config(1)
    assert first.notifications.url == "https://agg.example.net:8443/notify/north-1"
    assert second.notifications.url == "https://agg.example.net:8443/notify/south-2"
    # the fleet listens for every site: a site opens no socket of its own
    assert first.notifications.listen == "" and second.notifications.listen == ""
    assert fleet.notifications.max_connections == 100
    # a base without a path is fine: each site's URI adds /<name>
    bare = parse(folder, HEAD + '[notifications]\nurl = "https://agg.example.net"\n' + site("a"))
    assert bare.site_config(0).notifications.url == "https://agg.example.net/a"


def test_without_notifications_no_site_subscribes(folder: Path) -> None:
    fleet = parse(folder, HEAD + site("north-1"))
    assert fleet.site_config(0).notifications.url == ""


@pytest.mark.parametrize(
    ("section", "named"),
    [
        ('url = "http://agg.example.net/notify"', "notifications.url: 'http://agg"),
        (
            'url = "https://agg.example.net/n?x=1"',
            "notifications.url: 'https://agg.example.net/n?x",
        ),
        ('url = "https://a.example/n"\nlisten = "nowhere:port"', "notifications.listen: "),
        ('listen = "127.0.0.1:8443"', "notifications.listen: set notifications.url too"),
        ('url = "https://a.example/n"\nmax_connections = 0', "notifications.max_connections: 0"),
    ],
)
def test_a_bad_notifications_section_is_refused_naming_the_key_once(
    folder: Path, section: str, named: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(folder, HEAD + f"[notifications]\n{section}\n" + site("north-1") + site("south-2"))
    problems = [p for p in caught.value.problems if p.startswith("notifications.")]
    assert len(problems) == 1 and problems[0].startswith(named), caught.value.problems


def test_the_readme_example_of_a_fleet_loads(folder: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Many sites in one process (aggregator mode)\n") :]
    example = section[section.index("```toml\n") + 8 : section.index("```\n", 8)]
    for ours, theirs in (
        ("aggregator.pem", "device.pem"),
        ("aggregator.key", "device.key"),
        ("serca.pem", "ca.pem"),
    ):
        example = example.replace(f"pki/{ours}", f"pki/{theirs}")
    fleet = parse(folder, example)
    derived, given = site_identities(fleet)
    assert (derived.name, given.name) == ("depot-1", "depot-2")
    assert given.lfdi == "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"
    assert derived.lfdi.endswith("00037244")  # the PEN, as CSIP-AUS writes it
    assert fleet.notifications.site_url("depot-1") == "https://gw.example.net:8444/notify/depot-1"

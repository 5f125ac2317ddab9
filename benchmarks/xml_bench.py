"""Benchmark the 2030.5 XML codec against the lxml floor and two Python peers, in one run.

DERControlList documents with 1, 10 and 100 controls (envoy-shaped CSIP-AUS output). For each size:
parse (bytes -> objects) and serialise (objects -> bytes) with
  - floor: ``lxml.etree.fromstring`` / ``lxml.etree.tostring`` of the same document,
  - ours: ``transport.sep2.codec.decode`` / ``encode``,
  - envoy-schema (pydantic-xml models), py20305 (xsdata-pydantic models).
Timings are interleaved in rounds (each function once per round) so load from other processes hits
all alike; times and ratios use each function's minimum over rounds (its least disturbed run), and
the median of within-round ratios is printed beside them as a noise indicator. Prints one
human-readable line per measurement, then, last, one JSON line with the issue's keys (peer ratios =
peer time / our time, at N=100).

Usage: python3 benchmarks/xml_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def measure(fns: dict[str, Callable[[], object]], rounds: int, budget_s: float) -> dict[str, Any]:
    """Interleaved rounds: every function is timed once per round, so a burst of load from other
    processes hits all of them alike. Returns per-function minimum seconds per call and, per round,
    each function's time (for ratios taken within the same round)."""
    number = {}
    for name, fn in fns.items():
        fn()
        once = timeit.timeit(fn, number=1)
        number[name] = max(1, int(budget_s / rounds / max(once, 1e-7)))
    per_round: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            per_round[name].append(timeit.timeit(fn, number=number[name]) / number[name])
    return {"min": {k: min(v) for k, v in per_round.items()}, "rounds": per_round}


def ratio(m: dict[str, Any], num: str, den: str) -> float:
    """min(num) / min(den): each function's least disturbed time (timeit's advice)."""
    return float(m["min"][num] / m["min"][den])


def median_ratio(m: dict[str, Any], num: str, den: str) -> float:
    """Median over rounds of num/den timed in the same round: shown as a noise indicator."""
    pairs = zip(m["rounds"][num], m["rounds"][den], strict=True)
    return statistics.median(a / b for a, b in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller time budget per figure")
    args = parser.parse_args()
    budget = 1.0 if args.quick else 4.0  # seconds per function and size, spread over the rounds
    rounds = 5 if args.quick else 15

    from envoy_schema.server.schema.sep2.der import DERControlListResponse
    from py20305.models.sep import DercontrolList
    from py20305.xml.serialization import from_xml as x_from_xml
    from py20305.xml.serialization import to_xml as x_to_xml

    results: dict[int, dict[str, Any]] = {}
    for n in (1, 10, 100):
        ours_doc = document(n, codec.CSIPAUS_NS)
        envoy_doc = document(n, codec.CSIPAUS_NS_V13)
        tree = etree.fromstring(ours_doc)
        ours_obj = codec.decode(ours_doc, r.DERControlList)
        envoy_obj = DERControlListResponse.from_xml(envoy_doc)
        xs_obj = x_from_xml(ours_doc, DercontrolList)
        assert len(ours_obj.DERControl) == n and len(envoy_obj.DERControl) == n
        m = measure(
            {
                "parse_floor": lambda d=ours_doc: etree.fromstring(d),
                "parse_ours": lambda d=ours_doc: codec.decode(d, r.DERControlList),
                "parse_envoy": lambda d=envoy_doc: DERControlListResponse.from_xml(d),
                "parse_xsdata": lambda d=ours_doc: x_from_xml(d, DercontrolList),
                "ser_floor": lambda t=tree: etree.tostring(t),
                "ser_ours": lambda o=ours_obj: codec.encode(o),
                "ser_envoy": lambda o=envoy_obj: o.to_xml(skip_empty=True),
                "ser_xsdata": lambda o=xs_obj: x_to_xml(o, include_csipaus=True),
            },
            rounds,
            budget,
        )
        results[n] = m
        for key, value in m["min"].items():
            print(f"N={n:<3} {key:<13} {value * 1e6 / n:9.2f} us/control  ({value * 1e6:10.1f} us)")
        print(
            f"N={n:<3} parse  floor x{ratio(m, 'parse_ours', 'parse_floor'):.2f} "
            f"(median of rounds x{median_ratio(m, 'parse_ours', 'parse_floor'):.2f})  "
            f"envoy/ours {ratio(m, 'parse_envoy', 'parse_ours'):.1f}  "
            f"xsdata/ours {ratio(m, 'parse_xsdata', 'parse_ours'):.1f}"
        )
        print(
            f"N={n:<3} serial floor x{ratio(m, 'ser_ours', 'ser_floor'):.2f} "
            f"(median of rounds x{median_ratio(m, 'ser_ours', 'ser_floor'):.2f})  "
            f"envoy/ours {ratio(m, 'ser_envoy', 'ser_ours'):.1f}  "
            f"xsdata/ours {ratio(m, 'ser_xsdata', 'ser_ours'):.1f}"
        )
    rr = results[100]
    print(
        json.dumps(
            {
                "parse_us_per_control": round(results[100]["min"]["parse_ours"] * 1e6 / 100, 3),
                "parse_floor_ratio": round(ratio(rr, "parse_ours", "parse_floor"), 3),
                "parse_vs_envoy_schema": round(ratio(rr, "parse_envoy", "parse_ours"), 2),
                "parse_vs_xsdata": round(ratio(rr, "parse_xsdata", "parse_ours"), 2),
                "serialize_floor_ratio": round(ratio(rr, "ser_ours", "ser_floor"), 3),
                "serialize_vs_envoy_schema": round(ratio(rr, "ser_envoy", "ser_ours"), 2),
                "serialize_vs_xsdata": round(ratio(rr, "ser_xsdata", "ser_ours"), 2),
            }
        )
    )


if __name__ == "__main__":
    main()

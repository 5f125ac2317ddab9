"""Which server DER each configured DER is reported as (issue 19 point 2; PROTOCOL.md §2.7).

IEEE 2030.5 §10.10 gives an EndDevice a DERList with one DER per physical DER; the DER resource has
no name or mRID to match a device by, only its href. The rule:

1. a configured DER that names an ``href`` (``ders[].href``) is that listed DER;
2. the others take the listed DER no configured DER named, in list order, in configuration order.

A configured DER left without a listed DER (the server lists fewer, or not the href named) and a
listed DER no configured DER takes (the server lists more) are findings, recorded and reported,
never a reason to stop: the DER that matched are reported as usual. Pure: the configured DER and the
listed hrefs are arguments.
"""

from __future__ import annotations

from collections.abc import Sequence

from events.der_events import DerMatch

__all__ = ["ConfiguredDer", "match_ders", "mismatch_finding"]

ConfiguredDer = tuple[str, str | None]  # (name, the href the configuration names, or None)


def match_ders(
    configured: Sequence[ConfiguredDer], listed: Sequence[str]
) -> tuple[tuple[DerMatch, ...], tuple[str, ...], tuple[str, ...]]:
    """The matches (in configuration order), the configured DER left unmatched, and the listed
    hrefs left unmatched (in list order), by the rule in the module docstring."""
    free = list(dict.fromkeys(listed))  # a server listing one DER twice has one DER there
    named = {href for _, href in configured if href is not None}
    matched: dict[str, DerMatch] = {}
    for name, href in configured:
        if href is not None and href in free:
            matched[name] = DerMatch(der=name, href=href, by="href")
    in_order = [h for h in free if h not in named]
    for name, href in configured:
        if href is None and in_order:
            matched[name] = DerMatch(der=name, href=in_order.pop(0), by="order")
    taken = {m.href for m in matched.values()}
    return (
        tuple(matched[name] for name, _ in configured if name in matched),
        tuple(name for name, _ in configured if name not in matched),
        tuple(h for h in free if h not in taken),
    )


def mismatch_finding(
    configured: Sequence[ConfiguredDer],
    unmatched_ders: Sequence[str],
    unmatched_hrefs: Sequence[str],
    listed: int,
) -> str:
    """What an operator reads about a DERList that does not match the configuration ("" when it
    does)."""
    parts: list[str] = []
    if unmatched_ders:
        hrefs = dict(configured)
        named = [f"{n} (href {hrefs[n]})" if hrefs.get(n) else n for n in unmatched_ders]
        parts.append(
            f"the DERList has {listed} DER for {len(configured)} configured: "
            f"no server DER for {', '.join(named)}"
        )
    if unmatched_hrefs:
        parts.append(f"no configured DER for the server's {', '.join(unmatched_hrefs)}")
    return "; ".join(parts)

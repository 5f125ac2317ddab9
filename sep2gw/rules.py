"""The public rule behind each client obligation, as every explanation shown to a user cites it.

The code and its tests cite the team's digest by its numbering (PROTOCOL.md §4 rule N, §2 step N),
a document a site operator or a dispute analyst does not have. What they can look up is the
standard: IEEE 2030.5-2018 and, for the dynamic operating envelopes, CSIP-AUS. This table maps the
digest's rules to the public text by the standard's own names for the thing (the resource, the
attribute, the Response status), not by clause numbers: the clause numbering differs between the
2013 and 2018 editions and a number we cannot check would send the reader to the wrong page.
"""

from __future__ import annotations

from typing import Final

__all__ = ["PUBLIC_RULES", "rule"]

#: Digest rule (PROTOCOL.md §4 rule N; ``"preamble"`` for the randomisation terms) → the public
#: rule, in words a reader can find in the standard.
PUBLIC_RULES: Final[dict[int | str, str]] = {
    "preamble": "IEEE 2030.5-2018: event randomization, randomizeStart and randomizeDuration",
    1: "IEEE 2030.5-2018: event mRID",
    2: "IEEE 2030.5-2018: responseRequired, Response status 1",
    3: "IEEE 2030.5-2018: event rules, an event already ended",
    4: "IEEE 2030.5-2018: FunctionSetAssignments",
    5: "IEEE 2030.5-2018: event rules, successive events",
    6: "IEEE 2030.5-2018: event rules, effective start; Response status 2",
    7: "IEEE 2030.5-2018: event rules, overlapping events (DERProgram primacy, creationTime); "
    "Response status 7",
    8: "IEEE 2030.5-2018: EventStatus currentStatus",
    9: "IEEE 2030.5-2018: event rules, effective end; Response status 3",
    10: "IEEE 2030.5-2018: DefaultDERControl, DERProgram primacy",
    11: "IEEE 2030.5-2018: DERSettings setGradW, DERControl rampTms",
    12: "IEEE 2030.5-2018: events are scheduled by the client, without the server",
    13: "IEEE 2030.5-2018: events are scheduled by the client; randomization drawn once",
    14: "IEEE 2030.5-2018: DERControl deviceCategory",
    15: "IEEE 2030.5-2018: pollRate",
    16: "IEEE 2030.5-2018: Response, POSTed to replyTo",
}


def rule(*rules: int | str) -> str:
    """The public citation of one or more digest rules, for a reason shown to a user; the
    standard is named once (``IEEE 2030.5-2018: A; B``)."""
    texts: list[str] = []
    for r in rules:
        try:
            text = PUBLIC_RULES[r]
        except KeyError:
            raise KeyError(f"no public citation for rule {r!r}: add it to PUBLIC_RULES") from None
        if texts and text.startswith(_STANDARD):
            text = text[len(_STANDARD) :]
        texts.append(text)
    return "; ".join(texts)


_STANDARD: Final = "IEEE 2030.5-2018: "

"""Which server DER each configured DER is reported as: by a named href, else by order; a list
with fewer or more DER than configured is a finding."""

from __future__ import annotations

from statemachines.der_matching import match_ders, mismatch_finding


def pairs(configured, listed):  # type: ignore[no-untyped-def]
    matches, ders, hrefs = match_ders(configured, listed)
    return [(m.der, m.href, m.by) for m in matches], ders, hrefs


def test_configured_ders_take_the_listed_ders_in_order() -> None:
    assert pairs([("a", None), ("b", None)], ["/der/1", "/der/2"]) == (
        [("a", "/der/1", "order"), ("b", "/der/2", "order")],
        (),
        (),
    )


def test_a_named_href_wins_and_the_others_take_what_is_left_in_order() -> None:
    assert pairs([("a", None), ("b", "/der/1")], ["/der/1", "/der/2"]) == (
        [("a", "/der/2", "order"), ("b", "/der/1", "href")],
        (),
        (),
    )


def test_fewer_listed_than_configured_leaves_the_last_unmatched() -> None:
    matches, ders, hrefs = pairs([("a", None), ("b", None)], ["/der/1"])
    assert (matches, ders, hrefs) == ([("a", "/der/1", "order")], ("b",), ())
    assert mismatch_finding([("a", None), ("b", None)], ders, hrefs, 1) == (
        "the DERList has 1 DER for 2 configured: no server DER for b"
    )


def test_more_listed_than_configured_leaves_the_extra_alone() -> None:
    matches, ders, hrefs = pairs([("a", None)], ["/der/1", "/der/2"])
    assert (matches, ders, hrefs) == ([("a", "/der/1", "order")], (), ("/der/2",))
    assert mismatch_finding([("a", None)], ders, hrefs, 2) == (
        "no configured DER for the server's /der/2"
    )


def test_a_named_href_the_list_lacks_is_unmatched_not_taken_by_order() -> None:
    matches, ders, hrefs = pairs([("a", "/der/9"), ("b", None)], ["/der/1", "/der/2"])
    assert matches == [("b", "/der/1", "order")]
    assert (ders, hrefs) == (("a",), ("/der/2",))
    assert "no server DER for a (href /der/9)" in mismatch_finding(
        [("a", "/der/9"), ("b", None)], ders, hrefs, 2
    )


def test_a_listed_href_named_by_one_der_is_not_given_to_another_by_order() -> None:
    matches, ders, hrefs = pairs([("a", None), ("b", "/der/1")], ["/der/1"])
    assert matches == [("b", "/der/1", "href")]
    assert ders == ("a",)


def test_empty_list_matches_nothing() -> None:
    assert pairs([("a", None)], []) == ([], ("a",), ())

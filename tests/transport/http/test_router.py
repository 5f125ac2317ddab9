"""The server-role router: ``(method, path) -> handler``."""

from __future__ import annotations

import pytest

from transport.http.router import RESOLVED_CACHE, Match, Miss, RouteError, Router


def _router() -> Router[str]:
    router: Router[str] = Router()
    router.add("GET", "/dcap", "dcap")
    router.add("GET", "/edev/{id}", "edev-get")
    router.add("PUT", "/edev/{id}", "edev-put")
    router.add("GET", "/edev/special", "special")
    return router


def test_literal_path_resolves_to_its_handler() -> None:
    match = _router().resolve("GET", "/dcap")
    assert isinstance(match, Match) and match.handler == "dcap"


def test_template_binds_parameters_and_query() -> None:
    match = _router().resolve("put", "/edev/7?s=0&l=10")
    assert isinstance(match, Match)
    assert (match.handler, dict(match.params), dict(match.query)) == (
        "edev-put",
        {"id": "7"},
        {"s": "0", "l": "10"},
    )


def test_literal_route_wins_over_template() -> None:
    match = _router().resolve("GET", "/edev/special")
    assert isinstance(match, Match) and match.handler == "special"


def test_unknown_path_is_404() -> None:
    assert _router().resolve("GET", "/nope") == Miss(404)


def test_wrong_method_is_405_with_allowed_methods() -> None:
    assert _router().resolve("DELETE", "/edev/3") == Miss(405, ("GET", "PUT"))


def test_duplicate_and_malformed_routes_are_refused() -> None:
    router = _router()
    with pytest.raises(RouteError, match="already defined"):
        router.add("GET", "/dcap", "again")
    with pytest.raises(RouteError, match="start with '/'"):
        router.add("GET", "dcap", "x")
    with pytest.raises(RouteError, match="parameter segment"):
        router.add("GET", "/edev/{id", "x")


def test_a_route_added_after_a_miss_is_found() -> None:
    """Resolutions are remembered; adding a route forgets them, so the new route is reachable."""
    router: Router[str] = Router()
    router.add("GET", "/a", "a")
    assert router.resolve("GET", "/b") == Miss(404)
    router.add("GET", "/b", "b")
    found = router.resolve("GET", "/b")
    assert isinstance(found, Match) and found.handler == "b"


def test_remembered_resolutions_are_bounded_and_stay_right() -> None:
    router: Router[str] = Router()
    router.add("GET", "/edev/{e}", "edev")
    for i in range(RESOLVED_CACHE + 5):
        found = router.resolve("GET", f"/edev/{i}?s=0&l=1")
        assert isinstance(found, Match) and found.params == {"e": str(i)}
        assert found.query == {"s": "0", "l": "1"}
    assert len(router._resolved) <= RESOLVED_CACHE
    assert router.resolve("POST", "/edev/1") == Miss(405, ("GET",))

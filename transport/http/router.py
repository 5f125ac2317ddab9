"""A small ``(method, path) -> handler`` router for the server role (simulated utility
server, notification listener). Path templates use ``{name}`` segments; literal routes win over
templates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar
from urllib.parse import parse_qsl, unquote

__all__ = ["Match", "Miss", "RESOLVED_CACHE", "RouteError", "Router", "split_target"]

H = TypeVar("H")


class RouteError(ValueError):
    """A route cannot be added (bad template, duplicate)."""


@dataclass(frozen=True, slots=True)
class Match(Generic[H]):
    handler: H
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Miss:
    """404 when no route has the path; 405 (with the allowed methods) when others do."""

    status: int
    allow: tuple[str, ...] = ()


def split_target(target: str) -> tuple[str, dict[str, str]]:
    """Path and query of a request target (2030.5 paging uses ``?s=start&l=limit``)."""
    path, _, query = target.partition("?")
    return unquote(path), dict(parse_qsl(query, keep_blank_values=True))


def _segments(path: str) -> tuple[str, ...]:
    return tuple(path.strip("/").split("/")) if path.strip("/") else ()


#: Resolutions remembered per router (all forgotten when full, or when a route is added).
RESOLVED_CACHE = 512


class Router(Generic[H]):
    def __init__(self) -> None:
        self._exact: dict[str, dict[str, H]] = {}
        self._templates: list[tuple[tuple[str, ...], dict[str, H]]] = []
        # (method, target) -> result: a polling client asks for the same few targets all day.
        self._resolved: dict[tuple[str, str], Match[H] | Miss] = {}

    def add(self, method: str, path: str, handler: H) -> None:
        if not path.startswith("/"):
            raise RouteError(f"route path {path!r} must start with '/'")
        method = method.upper()
        segs = _segments(path)
        if any(s.startswith("{") != s.endswith("}") for s in segs):
            raise RouteError(f"route path {path!r}: a parameter segment is written {{name}}")
        if any(s.startswith("{") for s in segs):
            found = [m for existing, m in self._templates if existing == segs]
            if found:
                methods = found[0]
            else:
                methods = {}
                self._templates.append((segs, methods))
        else:
            methods = self._exact.setdefault("/" + "/".join(segs), {})
        if method in methods:
            raise RouteError(f"route {method} {path} is already defined")
        methods[method] = handler
        self._resolved.clear()

    def resolve(self, method: str, target: str) -> Match[H] | Miss:
        """The handler for ``method target`` (its path parameters and query), or why not. The
        mappings of a ``Match`` are shared between equal requests: read them, never change them."""
        key = (method, target)
        found = self._resolved.get(key)
        if found is None:
            found = self._resolve(method, target)
            if len(self._resolved) >= RESOLVED_CACHE:
                self._resolved.clear()
            self._resolved[key] = found
        return found

    def _resolve(self, method: str, target: str) -> Match[H] | Miss:
        path, query = split_target(target)
        segs = _segments(path)
        candidates: list[tuple[dict[str, H], dict[str, str]]] = []
        exact = self._exact.get("/" + "/".join(segs))
        if exact is not None:
            candidates.append((exact, {}))
        for template, methods in self._templates:
            if len(template) != len(segs):
                continue
            params: dict[str, str] = {}
            for t, s in zip(template, segs, strict=True):
                if t.startswith("{"):
                    params[t[1:-1]] = s
                elif t != s:
                    break
            else:
                candidates.append((methods, params))
        if not candidates:
            return Miss(404)
        for methods, params in candidates:
            handler = methods.get(method.upper())
            if handler is not None:
                return Match(handler, path, params, query)
        allowed = sorted({m for methods, _ in candidates for m in methods})
        return Miss(405, tuple(allowed))

"""Worlds across CSIP-AUS versions (issue 18 points 1 and 2): what the gateway did before it
learned the server's version — every CSIP-AUS element in v1.2's namespace — is refused by a strict
v1.3 server, and the same site allowed v1.3 speaks it from its first write."""

from __future__ import annotations

from pathlib import Path

import msgspec

from sep2gw.simserver import Scenario, under_version
from sep2gw.simserver.library import library
from sep2gw.world import run_world
from transport.sep2 import resources as r


def _lifecycle_under_v13(*versions: str) -> Scenario:
    [entry] = [e for e in library() if e.file == "event_lifecycle.toml"]
    scenario = under_version(entry.scenario, "v1.3")
    gateway = msgspec.structs.replace(scenario.gateway, csipaus_versions=list(versions))
    return msgspec.structs.replace(scenario, gateway=gateway)


def test_a_gateway_that_writes_only_v1_2_is_refused_by_a_strict_v1_3_server(pki: Path) -> None:
    """The defect issue 18 names: against a v1.3 server the gateway sent v1.2 ConnectionPoint,
    DERCapability and DERSettings; a v1.3 parser refuses DERCapability (and the link records the
    server's version as one the site does not allow)."""
    result = run_world(_lifecycle_under_v13("v1.2"), seed=1, seconds=120, site=pki, monitor=False)
    refused = result.server.schema_invalid()
    assert refused, "the strict v1.3 server accepted v1.2 bodies"
    assert any(isinstance(q.body, r.DERCapability) or "/der/" in q.path for q in refused)
    assert all(
        "https://csipaus.org/ns," in q.schema_error or "v1.3" in q.schema_error for q in refused
    )
    types = {rec.type for rec in result.store.read_raw()}
    assert "link.csipaus_fault.v1" in types


def test_the_same_site_allowed_v1_3_speaks_it_from_its_first_write(pki: Path) -> None:
    result = run_world(_lifecycle_under_v13(), seed=1, seconds=120, site=pki, monitor=False)
    assert result.server.validator is not None
    assert result.server.schema_invalid() == []
    writes = [q for q in result.server.requests if q.method in ("POST", "PUT")]
    assert writes and all(q.status < 400 for q in writes), [(q.path, q.reason) for q in writes]

"""CSIP-AUS v1.3 service discovery and version negotiation (issue 18 point 3), before the first
DeviceCapability of a run.

``GET /.well-known/csipaus``; choose the newest version both the server offers and the profile
allows (:func:`transport.sep2.versions.choose_version`); follow that version's DeviceCapability
link. Each way it can fail falls back to the profile's rule, which is the same for every CSIP-AUS
profile: the configured ``server.dcap_path``, writing the profile's first allowed version until
the server's namespaces say which it speaks (the link learns it from every document). Every
outcome is recorded as ``link.csipaus_version.v1``, with the fallback's reason:

- the well-known resource is absent (any non-2xx answer: v1.2 servers answer 404 or 410);
- it offers only versions the profile does not allow;
- it is malformed (not the JSON document, or not JSON);
- the DeviceCapability it names fails (a non-2xx answer or a body that is not a DeviceCapability).

A link failure (no answer at all) is not a fallback: the walk's step fails and is retried, and
discovery with it.
"""

from __future__ import annotations

import logging
from typing import Final

from actors.link import HttpFailure, Link
from transport.sep2 import resources as r
from transport.sep2.versions import (
    WELL_KNOWN_PATH,
    Learned,
    MalformedWellKnown,
    choose_version,
    parse_well_known,
)

__all__ = ["WELL_KNOWN_ACCEPT", "discover_device_capability"]

logger = logging.getLogger(__name__)

#: What the well-known GET asks for (the document is JSON).
WELL_KNOWN_ACCEPT: Final = "application/json"


async def discover_device_capability(
    link: Link, configured_path: str
) -> tuple[str, r.DeviceCapability]:
    """Issue 18 point 3: the DeviceCapability path to use and its document, by v1.3 discovery
    when the server offers it, else by the profile's fallback (``configured_path``). Records the
    version in force on ``link``; raises what the final DeviceCapability GET raises."""
    allowed = link.csipaus_versions
    try:
        response = await link.fetch(WELL_KNOWN_PATH, accept=WELL_KNOWN_ACCEPT)
    except HttpFailure as failure:
        return await _fall_back(
            link,
            configured_path,
            f"{WELL_KNOWN_PATH} absent (HTTP {failure.status})",
            kind="absent",
        )
    try:
        offer = parse_well_known(response.body)
    except MalformedWellKnown as exc:
        return await _fall_back(
            link, configured_path, f"{WELL_KNOWN_PATH} malformed: {exc}", kind="malformed"
        )
    chosen = choose_version(offer, allowed)
    if chosen is None:
        return await _fall_back(
            link,
            configured_path,
            f"{WELL_KNOWN_PATH} offers only {', '.join(offer.namespaces)}; the profile allows "
            f"{', '.join(v.name for v in allowed)}",
            kind="unsupported",
            offered=offer.namespaces,
        )
    version, paths = chosen
    path = paths[0]
    link.assume_version(version)
    try:
        dcap = await link.get(path, r.DeviceCapability)
    except HttpFailure as failure:
        return await _fall_back(
            link,
            configured_path,
            f"{version.name} DeviceCapability {path} failed: {failure}",
            kind="link-failed",
            offered=offer.namespaces,
        )
    await link.settle_version(
        version, Learned.WELL_KNOWN, path=WELL_KNOWN_PATH, dcap_path=path, offered=offer.namespaces
    )
    return path, dcap


async def _fall_back(
    link: Link,
    configured_path: str,
    reason: str,
    *,
    kind: str,
    offered: tuple[str, ...] = (),
) -> tuple[str, r.DeviceCapability]:
    """The profile's rule: the configured DeviceCapability, the first allowed version until the
    server's namespaces say otherwise."""
    logger.warning("CSIP-AUS discovery fell back to %s: %s", configured_path, reason)
    await link.settle_version(
        link.csipaus_versions[0],
        Learned.CONFIGURED,
        dcap_path=configured_path,
        offered=offered,
        fallback=reason,
        fallback_kind=kind,
    )
    return configured_path, await link.get(configured_path, r.DeviceCapability)

"""Events of aggregator mode (issue 19 point 1): who a site's log is about.

A fleet keeps one log per site (decision 0022a). Each site's log begins, after
``runtime.gateway_started.v1``, with a :class:`SiteIdentityRecorded`: the evidence handed over for a
dispute says by itself which site, EndDevice and NMI it concerns and under which certificate the
site spoke, without the fleet's configuration file.
"""

from __future__ import annotations

from events.base import Event

__all__ = ["FLEET_EVENT_TYPES", "FLEET_STREAM", "SiteIdentityRecorded"]

FLEET_STREAM = "fleet"


class SiteIdentityRecorded(Event, frozen=True, kw_only=True, tag="fleet.site_identity.v1"):
    """The site this log is about, recorded at each start of its gateway in a fleet.

    ``lfdi``/``sfdi``: the site's EndDevice identity (IEEE 2030.5 §6.3.3–6.3.4); ``aggregator_lfdi``:
    the LFDI of the aggregator certificate the site talks on (``""``: its own device certificate);
    ``nmi``: the configured NMI (``""``: none); ``server_url``: the utility server."""

    fleet: str
    site: str
    lfdi: str
    sfdi: int
    nmi: str = ""
    aggregator_lfdi: str = ""
    server_url: str = ""


FLEET_EVENT_TYPES: tuple[type[Event], ...] = (SiteIdentityRecorded,)

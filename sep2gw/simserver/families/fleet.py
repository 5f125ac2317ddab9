"""Aggregator support: what the head-end knows about the EndDevices a certificate runs (IEEE 2030.5
§6.6 / CSIP §5.2 access; CSIP-AUS "multiple-EndDevice shared controls").

The access rules themselves sit with the holdings (``families/base.py``: ``acts_for``,
``is_registered``, ``program_serves``), because every family applies them; the registration of
other LFDIs by an aggregator is ``DiscoveryResources._post_edev``'s. What this mixin adds is the
per-EndDevice view an audit or a fleet world asks for: which EndDevices a certificate registered,
and the Responses each EndDevice gave to a shared control.
"""

from __future__ import annotations

from sep2gw.simserver.families.base import ServedState
from sep2gw.simserver.records import DeviceRecord


class FleetResources(ServedState):
    """Per-EndDevice queries over what an aggregator registered and answered."""

    def devices_registered_by(self, certificate_lfdi: int) -> list[DeviceRecord]:
        """The EndDevices ``certificate_lfdi`` registered (an aggregator's sites), in order."""
        return list(self._devices_of.get(certificate_lfdi, ()))

    def responses_by_end_device(self, mrid: int | str) -> dict[int, list[int]]:
        """The Response codes accepted for control ``mrid``, per EndDevice LFDI (a control in a
        shared program is answered by every EndDevice it applies to, each for itself)."""
        wanted = int(mrid, 16) if isinstance(mrid, str) else mrid
        found: dict[int, list[int]] = {}
        for _, response in self.responses:
            if int(response.subject) == wanted:
                found.setdefault(int(response.endDeviceLFDI), []).append(response.status or 0)
        return found

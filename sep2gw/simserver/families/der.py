"""DER information the devices PUT: DERList, DER, DERCapability/DERSettings/DERStatus/DERAvailability,
and the CSIP-AUS ConnectionPoint."""

from __future__ import annotations

from typing import Any

import msgspec

from sep2gw.simserver.families.base import ServedState
from sep2gw.simserver.records import (
    _SUBSCRIBABLE_NONE,
    DeviceRecord,
    SimReply,
    _Ctx,
    _decode,
    _NotFound,
)
from transport.sep2 import resources as r


class DerResources(ServedState):
    """DER information the devices PUT: DERList, DER, DERCapability/DERSettings/DERStatus/DERAvailability,"""

    _DER_INFO: dict[str, tuple[str, type[msgspec.Struct]]] = {
        "dercap": ("der_capability", r.DERCapability),
        "derg": ("der_settings", r.DERSettings),
        "ders": ("der_status", r.DERStatus),
        "derav": ("der_availability", r.DERAvailability),
    }

    def der_count(self) -> int:
        """How many DER the EndDevice's DERList holds (``server.ders``, else one per battery of
        the simulated site)."""
        scenario = self.scenario
        return scenario.server.ders or 1 + len(scenario.batteries)

    def _der(self, device: DeviceRecord, number: int = 1) -> r.DER:
        base = f"/edev/{device.id}/der/{number}"
        return r.DER(
            href=base,
            subscribable=_SUBSCRIBABLE_NONE,
            AssociatedDERProgramListLink=r.AssociatedDERProgramListLink(
                href=f"/edev/{device.id}/fsa/1/derp", all=len(self._fsa_programs(device))
            ),
            DERAvailabilityLink=r.DERAvailabilityLink(href=f"{base}/derav"),
            DERCapabilityLink=r.DERCapabilityLink(href=f"{base}/dercap"),
            DERSettingsLink=r.DERSettingsLink(href=f"{base}/derg"),
            DERStatusLink=r.DERStatusLink(href=f"{base}/ders"),
        )

    def _get_der_list(self, ctx: _Ctx) -> SimReply:
        device = self._own_device(ctx)
        items = [self._der(device, n) for n in range(1, self.der_count() + 1)]
        page = self._page_of(ctx, items)
        return self._doc(
            r.DERList(
                href=f"/edev/{device.id}/der",
                all=len(items),
                results=len(page),
                pollRate=self.poll_rates["der"],
                DER=tuple(page),
            )
        )

    def _der_number(self, ctx: _Ctx) -> int | None:
        text = ctx.params["d"]
        if not text.isdigit() or not 1 <= int(text) <= self.der_count() or text != str(int(text)):
            return None
        return int(text)

    def _get_der(self, ctx: _Ctx) -> SimReply:
        number = self._der_number(ctx)
        if number is None:
            return SimReply(404, reason=f"no DER {ctx.params['d']!r}")
        return self._doc(self._der(self._own_device(ctx), number))

    def _der_info_slot(self, ctx: _Ctx) -> tuple[int, str, type[msgspec.Struct]]:
        number = self._der_number(ctx)
        if number is None or ctx.params["info"] not in self._DER_INFO:
            raise _NotFound(f"no resource at {ctx.path}")
        return (number, *self._DER_INFO[ctx.params["info"]])

    @staticmethod
    def der_info(device: DeviceRecord, number: int, attr: str) -> Any:
        """What the device PUT as ``attr`` (``der_status``, …) of its DER ``number``."""
        if number == 1:
            return getattr(device, attr)
        return device.more_der.get((number, attr))

    def _get_der_info(self, ctx: _Ctx) -> SimReply:
        number, attr, _ = self._der_info_slot(ctx)
        value = self.der_info(self._own_device(ctx), number, attr)
        if value is None:
            return SimReply(404, reason=f"{ctx.path}: nothing PUT here yet")
        return self._doc(msgspec.structs.replace(value, href=ctx.path))

    def _put_der_info(self, ctx: _Ctx) -> SimReply:
        """DER information (CSIP §5.2.4, PROTOCOL.md §2.7): the device PUTs DERCapability,
        DERSettings, DERStatus and DERAvailability, at each of its DER; stored as sent; 204."""
        number, attr, cls = self._der_info_slot(ctx)
        parsed = _decode(ctx.body, cls)
        if isinstance(parsed, SimReply):
            return parsed
        device = self._own_device(ctx)
        if number == 1:
            setattr(device, attr, parsed)
        else:
            device.more_der[(number, attr)] = parsed
        return SimReply(204, parsed=parsed)

    def _get_connection_point(self, ctx: _Ctx) -> SimReply:
        device = self._own_device(ctx)
        if not self.scenario.server.connection_point:
            return SimReply(404, reason="this server has no ConnectionPoint resources")
        if device.connection_point is None:
            return SimReply(404, reason=f"{ctx.path}: nothing PUT here yet")
        return self._doc(msgspec.structs.replace(device.connection_point, href=ctx.path))

    def _put_connection_point(self, ctx: _Ctx) -> SimReply:
        """CSIP-AUS ConnectionPoint: the device PUTs its NMI; 204."""
        if not self.scenario.server.connection_point:
            return SimReply(404, reason="this server has no ConnectionPoint resources")
        parsed = _decode(ctx.body, r.ConnectionPointType)
        if isinstance(parsed, SimReply):
            return parsed
        self._own_device(ctx).connection_point = parsed
        return SimReply(204, parsed=parsed)

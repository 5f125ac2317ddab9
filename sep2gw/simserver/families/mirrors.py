"""Metering mirrors and logs: MirrorUsagePoints and their MirrorMeterReadings (IEEE 2030.5 §10.9), and
the EndDevice LogEventList."""

from __future__ import annotations

import msgspec

from sep2gw.simserver.families.base import ServedState
from sep2gw.simserver.records import (
    _SUBSCRIBABLE_NONE,
    MirrorRecord,
    SimReply,
    _Ctx,
    _decode,
    _decode_any,
    _NotFound,
)
from transport.sep2 import resources as r


class MirrorResources(ServedState):
    """Metering mirrors and logs: MirrorUsagePoints and their MirrorMeterReadings (IEEE 2030.5 §10.9), and"""

    def _get_log_events(self, ctx: _Ctx) -> SimReply:
        device = self._own_device(ctx)
        events = device.log_events
        page = self._page_of(ctx, events)
        return self._doc(
            r.LogEventList(
                href=f"/edev/{device.id}/lel",
                subscribable=_SUBSCRIBABLE_NONE,
                all=len(events),
                results=len(page),
                pollRate=self.poll_rates["lel"],
                LogEvent=tuple(page),
            )
        )

    def _post_log_event(self, ctx: _Ctx) -> SimReply:
        parsed = _decode(ctx.body, r.LogEvent)
        if isinstance(parsed, SimReply):
            return parsed
        device = self._own_device(ctx)
        device.log_events.append(
            msgspec.structs.replace(
                parsed, href=f"/edev/{device.id}/lel/{len(device.log_events) + 1}"
            )
        )
        return SimReply(
            201, location=f"/edev/{device.id}/lel/{len(device.log_events)}", parsed=parsed
        )

    def _mup(self, mirror: MirrorRecord) -> r.MirrorUsagePoint:
        return msgspec.structs.replace(
            mirror.mup, href=f"/mup/{mirror.id}", postRate=self.post_rate_s
        )

    def _get_mup_list(self, ctx: _Ctx) -> SimReply:
        mirrors = self._visible_mirrors(ctx)
        page = self._page_of(ctx, mirrors)
        return self._doc(
            r.MirrorUsagePointList(
                href="/mup",
                all=len(mirrors),
                results=len(page),
                pollRate=self.poll_rates["mup"],
                MirrorUsagePoint=tuple(self._mup(m) for m in page),
            )
        )

    def _post_mup(self, ctx: _Ctx) -> SimReply:
        """Metering mirror (IEEE 2030.5 §10.8.4): POST a MirrorUsagePoint → 201 + Location; a
        MirrorUsagePoint with an mRID already mirrored for this device answers that one's
        Location (the device may have lost it). An aggregator's mirror belongs to the EndDevice
        its ``deviceLFDI`` names (one it registered; 403 for any other)."""
        parsed = _decode(ctx.body, r.MirrorUsagePoint)
        if isinstance(parsed, SimReply):
            return parsed
        assert ctx.lfdi is not None
        owner = ctx.lfdi
        if ctx.lfdi in self.aggregators and int(parsed.deviceLFDI) != ctx.lfdi:
            device = self.device_by_lfdi(int(parsed.deviceLFDI))
            if device is None or not self.acts_for(ctx.lfdi, device):
                return SimReply(
                    403,
                    reason=f"/MirrorUsagePoint/deviceLFDI: {int(parsed.deviceLFDI):040X} is not "
                    "an EndDevice this certificate registered",
                    parsed=parsed,
                )
            owner = device.lfdi
        for mirror in self.mirrors:
            if mirror.owner_lfdi == owner and int(mirror.mup.mRID) == int(parsed.mRID):
                mirror.mup = parsed
                return SimReply(201, location=f"/mup/{mirror.id}", parsed=parsed)
        mirror = MirrorRecord(len(self.mirrors) + 1, owner, parsed, int(ctx.now))
        self.mirrors.append(mirror)
        return SimReply(201, location=f"/mup/{mirror.id}", parsed=parsed)

    def _mirror_param(self, ctx: _Ctx) -> MirrorRecord:
        text = ctx.params["m"]
        if text.isdigit() and 1 <= int(text) <= len(self.mirrors):
            mirror = self.mirrors[int(text) - 1]
            if self._owns_mirror(ctx.lfdi, mirror):
                return mirror
        raise _NotFound(f"no MirrorUsagePoint {text!r} of this device")

    def _get_mup(self, ctx: _Ctx) -> SimReply:
        return self._doc(self._mup(self._mirror_param(ctx)))

    def _post_readings(self, ctx: _Ctx) -> SimReply:
        """Readings to a mirror (IEEE 2030.5 §10.8.4): a MirrorMeterReading (with its
        MirrorReadingSets) or a MirrorMeterReadingList POSTed to the MirrorUsagePoint."""
        mirror = self._mirror_param(ctx)
        parsed = _decode_any(ctx.body, (r.MirrorMeterReading, r.MirrorMeterReadingList))
        if isinstance(parsed, SimReply):
            return parsed
        readings: list[r.MirrorMeterReading] = (
            list(parsed.MirrorMeterReading)
            if isinstance(parsed, r.MirrorMeterReadingList)
            else [parsed]
            if isinstance(parsed, r.MirrorMeterReading)
            else []
        )
        known = {int(m.mRID) for m in mirror.mup.MirrorMeterReading}
        for reading in readings:
            if known and int(reading.mRID) not in known:
                return SimReply(
                    400,
                    reason=f"/MirrorMeterReading/mRID: {int(reading.mRID):032X} is not a "
                    f"MirrorMeterReading of MirrorUsagePoint {mirror.id}",
                    parsed=parsed,
                )
        for reading in readings:
            mirror.readings.append((int(ctx.now), reading))
        return SimReply(201, location=f"/mup/{mirror.id}", parsed=parsed)

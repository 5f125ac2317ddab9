"""Discovery and registration: DeviceCapability, Time, the EndDeviceList (in-band registration by POST),
EndDevice, Registration and FunctionSetAssignments (IEEE 2030.5 §§6.6, 10.2, 10.3, 11.1)."""

from __future__ import annotations

import json
from typing import Final

import msgspec

from sep2gw.simserver.families.base import ServedState
from sep2gw.simserver.records import (
    _FSA_MRID,
    _SUBSCRIBABLE_NONE,
    DeviceRecord,
    SimReply,
    _Ctx,
    _decode,
)
from transport.identity import sfdi_from_lfdi
from transport.sep2 import resources as r
from transport.sep2.hexbinary import HexBinary32, HexBinary128, HexBinary160

#: A CSIP-AUS namespace no client knows: what a ``well_known = "unsupported"`` server offers.
UNSUPPORTED_NAMESPACE: Final = "https://csipaus.org/ns/v9.9"
#: Where a ``well_known = "broken_link"`` server says the DeviceCapability is (nothing is there).
BROKEN_DCAP: Final = "/v13/dcap"


class DiscoveryResources(ServedState):
    """Discovery and registration: DeviceCapability, Time, the EndDeviceList (in-band registration by POST),"""

    def _get_well_known(self, ctx: _Ctx) -> SimReply:
        """CSIP-AUS v1.3 service discovery (``/.well-known/csipaus``, JSON): the versions served
        with their DeviceCapability paths, as ``quirks.well_known`` says (decision 0020g)."""
        mode = self.quirks.well_known
        if mode == "absent":
            return SimReply(404, reason="no resource at /.well-known/csipaus")
        if mode == "gone":
            return SimReply(410, reason="no service discovery: this server speaks CSIP-AUS v1.2")
        if mode == "malformed":
            # A string where the list of paths belongs.
            document: object = {
                "supportedSchemaVersions": {self.quirks.csipaus_ns: {"dcap": "/dcap"}}
            }
        else:
            namespace = UNSUPPORTED_NAMESPACE if mode == "unsupported" else self.quirks.csipaus_ns
            path = BROKEN_DCAP if mode == "broken_link" else "/dcap"
            document = {"supportedSchemaVersions": {namespace: {"dcap": [path]}}}
        body = json.dumps(document, separators=(",", ":")).encode()
        return SimReply(200, body, content_type="application/json")

    def _get_dcap(self, ctx: _Ctx) -> SimReply:
        return self._doc(
            r.DeviceCapability(
                href="/dcap",
                pollRate=self.poll_rates["dcap"],
                TimeLink=r.TimeLink(href="/tm"),
                EndDeviceListLink=r.EndDeviceListLink(
                    href="/edev", all=len(self._visible_devices(ctx))
                ),
                MirrorUsagePointListLink=r.MirrorUsagePointListLink(
                    href="/mup", all=len(self._visible_mirrors(ctx))
                ),
            )
        )

    def _get_time(self, ctx: _Ctx) -> SimReply:
        settings = self.scenario.server
        now = int(ctx.now)
        return self._doc(
            r.Time(
                href="/tm",
                currentTime=now,
                dstEndTime=0,
                dstOffset=settings.dst_offset_s,
                dstStartTime=0,
                quality=settings.time_quality,
                tzOffset=settings.tz_offset_s,
                localTime=now + settings.tz_offset_s + settings.dst_offset_s,
                pollRate=self.poll_rates["time"],
            )
        )

    def _end_device_seen_by(self, device: DeviceRecord, viewer: int | None) -> r.EndDevice:
        """The EndDevice as the certificate ``viewer`` reads it: subscriptions are offered (the
        link, ``subscribable`` 1) to a certificate that may subscribe, or to every one when the
        server says so (``subscription_link``)."""
        edev = self._end_device(device)
        if not self.offers_subscriptions_to(viewer):
            return edev
        return msgspec.structs.replace(
            edev,
            subscribable=self.subscribable_for(viewer),
            SubscriptionListLink=self.subscription_list_link(device, viewer),
        )

    def _end_device(self, device: DeviceRecord) -> r.EndDevice:
        base = f"/edev/{device.id}"
        return r.EndDevice(
            href=base,
            subscribable=_SUBSCRIBABLE_NONE,
            sFDI=device.sfdi,
            DERListLink=r.DERListLink(href=f"{base}/der", all=1),
            deviceCategory=HexBinary32(device.device_category),
            lFDI=HexBinary160(device.lfdi),
            LogEventListLink=r.LogEventListLink(href=f"{base}/lel", all=len(device.log_events)),
            changedTime=device.changed_time,
            enabled=True,
            FunctionSetAssignmentsListLink=r.FunctionSetAssignmentsListLink(
                href=f"{base}/fsa", all=1
            ),
            postRate=self.post_rate_s,
            RegistrationLink=(
                r.RegistrationLink(href=f"{base}/rg")
                if self.scenario.server.registration_link
                else None
            ),
            ConnectionPointLink=(
                r.Link(href=f"{base}/cp") if self.scenario.server.connection_point else None
            ),
        )

    def _get_edev_list(self, ctx: _Ctx) -> SimReply:
        devices = self._visible_devices(ctx)
        page = self._page_of(ctx, devices)
        return self._doc(
            r.EndDeviceList(
                href="/edev",
                subscribable=_SUBSCRIBABLE_NONE,
                all=len(devices),
                results=len(page),
                pollRate=self.poll_rates["edev"],
                EndDevice=tuple(self._end_device_seen_by(d, ctx.lfdi) for d in page),
            )
        )

    def _post_edev(self, ctx: _Ctx) -> SimReply:
        """In-band registration (IEEE 2030.5 §6.3.5, CSIP §5.2.1): a device POSTs its EndDevice;
        201 + Location. Its lFDI must be the one of the presenting certificate — unless that
        certificate is an aggregator's, which registers the EndDevices of the sites it runs —
        and its sFDI the one derived from that lFDI."""
        edev = _decode(ctx.body, r.EndDevice)
        if isinstance(edev, SimReply):
            return edev
        if not self.scenario.server.register_in_band:
            return SimReply(403, reason="in-band registration is disabled", parsed=edev)
        if ctx.lfdi is None:
            return SimReply(403, reason="no client certificate LFDI", parsed=edev)
        aggregator = ctx.lfdi in self.aggregators
        if edev.lFDI is None or (int(edev.lFDI) != ctx.lfdi and not aggregator):
            return SimReply(
                403,
                reason=f"EndDevice lFDI {edev.lFDI!r} is not the client certificate's LFDI "
                f"{ctx.lfdi:040X}",
                parsed=edev,
            )
        lfdi = int(edev.lFDI)
        expected_sfdi = sfdi_from_lfdi(f"{lfdi:040X}")
        if edev.sFDI != expected_sfdi:
            return SimReply(
                400,
                reason=f"/EndDevice/sFDI: {edev.sFDI} is not the SFDI of the LFDI "
                f"({expected_sfdi})",
                parsed=edev,
            )
        existing = self.device_by_lfdi(lfdi)
        if existing is not None:  # re-registration: the same resource, as real servers answer
            if not self.acts_for(ctx.lfdi, existing):
                # Another certificate registered this LFDI: an aggregator cannot take it over.
                return SimReply(
                    403, reason=f"EndDevice {lfdi:040X} belongs to another LFDI", parsed=edev
                )
            return SimReply(201, location=f"/edev/{existing.id}", parsed=edev)
        device = DeviceRecord(
            id=len(self.devices) + 1,
            lfdi=lfdi,
            sfdi=edev.sFDI,
            device_category=int(edev.deviceCategory or 0),
            changed_time=edev.changedTime,
            registered_at=int(ctx.now),
            pin=self.scenario.server.in_band_pin
            if self.scenario.server.in_band_pin is not None
            else self.pin,
            registered_by=None if lfdi == ctx.lfdi else ctx.lfdi,
        )
        self._add_device(device)
        return SimReply(201, location=f"/edev/{device.id}", parsed=edev)

    def _get_edev(self, ctx: _Ctx) -> SimReply:
        return self._doc(self._end_device_seen_by(self._own_device(ctx), ctx.lfdi))

    def _get_registration(self, ctx: _Ctx) -> SimReply:
        device = self._own_device(ctx)
        if not self.scenario.server.registration_link:
            return SimReply(404, reason=f"EndDevice {device.id} has no Registration")
        return self._doc(
            r.Registration(
                href=f"/edev/{device.id}/rg",
                dateTimeRegistered=device.registered_at,
                pIN=device.pin,
                pollRate=self.poll_rates["reg"],
            )
        )

    def _fsa(self, device: DeviceRecord) -> r.FunctionSetAssignments:
        base = f"/edev/{device.id}/fsa/1"
        return r.FunctionSetAssignments(
            href=base,
            mRID=HexBinary128(_FSA_MRID + device.id),
            description="simulated utility programs",
            DERProgramListLink=r.DERProgramListLink(
                href=f"{base}/derp", all=len(self._fsa_programs(device))
            ),
            TimeLink=r.TimeLink(href="/tm"),
            TariffProfileListLink=(
                r.TariffProfileListLink(href="/tp", all=len(self.tariffs)) if self.tariffs else None
            ),
        )

    def _get_fsa_list(self, ctx: _Ctx) -> SimReply:
        device = self._own_device(ctx)
        items = [self._fsa(device)]
        page = self._page_of(ctx, items)
        return self._doc(
            r.FunctionSetAssignmentsList(
                href=f"/edev/{device.id}/fsa",
                subscribable=self.subscribable_for(ctx.lfdi),
                all=len(items),
                results=len(page),
                pollRate=self.poll_rates["fsa"],
                FunctionSetAssignments=tuple(page),
            )
        )

    def _get_fsa(self, ctx: _Ctx) -> SimReply:
        if ctx.params["f"] != "1":
            return SimReply(404, reason=f"no FunctionSetAssignments {ctx.params['f']!r}")
        return self._doc(self._fsa(self._own_device(ctx)))

"""What every resource family of the simulated server reads: the holdings (declared here, filled by
:class:`~sep2gw.simserver.state.UtilityState`), lookups by LFDI/SFDI/mRID, paths, and rendering a
resource to its document (cached while unchanged)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec

from sep2gw.simserver.quirks import Quirks, apply_text_quirks
from sep2gw.simserver.records import (
    _RENDERED_CACHE,
    ControlRecord,
    DeviceRecord,
    MirrorRecord,
    ProgramRecord,
    SimReply,
    T,
    _Ctx,
    _Failure,
    _NotFound,
    _page,
)
from sep2gw.simserver.scenario import (
    Scenario,
    SlowResponses,
)
from transport.sep2 import encode
from transport.sep2 import resources as r

if TYPE_CHECKING:
    from sep2gw.simserver.families.pricing import TariffRecord

#: ``SubscribableType`` 1 (IEEE 2030.5-2018): the resource supports non-conditional subscriptions.
SUBSCRIBABLE_NON_CONDITIONAL = 1


class ServedState:
    """What every resource family of the simulated server reads: the holdings (declared here, filled by"""

    scenario: Scenario
    quirks: Quirks
    _rendered: dict[msgspec.Struct, bytes]
    _rendered_with: Quirks
    start: int
    pin: int
    post_rate_s: int
    poll_rates: dict[str, int]
    programs: list[ProgramRecord]
    _program_by_key: dict[str, ProgramRecord]
    devices: list[DeviceRecord]
    #: Aggregator certificate LFDIs: each may register EndDevices with other LFDIs and act for them.
    aggregators: frozenset[int]
    _devices_by_lfdi: dict[int, DeviceRecord]
    _devices_of: dict[int, list[DeviceRecord]]  # by the certificate LFDI that registered them
    mirrors: list[MirrorRecord]
    responses: list[tuple[int, r.Response]]
    failures: list[_Failure]
    slow: list[tuple[float, float, SlowResponses]]
    tls_failures: list[tuple[float, float]]
    _controls_by_mrid: dict[int, ControlRecord]
    _control_counter: int
    tariffs: list[TariffRecord]
    price_responses: list[tuple[int, r.Response]]
    _price_counter: int

    def may_subscribe(self, lfdi: int | None) -> bool:
        """Whether the certificate ``lfdi`` may subscribe (``[server] subscriptions``)."""
        mode = self.scenario.server.subscriptions
        if lfdi is None or mode == "none":
            return False
        if mode == "all":
            return True
        return lfdi in self.aggregators

    def offers_subscriptions_to(self, lfdi: int | None) -> bool:
        """Whether ``lfdi`` is shown the subscription link and ``subscribable`` 1: a certificate
        that may subscribe, or everyone under ``subscription_link = "everyone"``."""
        settings = self.scenario.server
        if settings.subscriptions == "none":
            return False
        return settings.subscription_link == "everyone" or self.may_subscribe(lfdi)

    def subscribable_for(self, lfdi: int | None) -> int:
        """The ``subscribable`` attribute of a subscribable resource served to ``lfdi``."""
        return SUBSCRIBABLE_NON_CONDITIONAL if self.offers_subscriptions_to(lfdi) else 0

    def subscription_list_link(
        self, device: DeviceRecord, lfdi: int | None
    ) -> r.SubscriptionListLink | None:
        """The EndDevice's link to its subscriptions, for a certificate it is offered to. Without
        ``all`` (as envoy): the EndDevice does not change when a subscription comes or goes."""
        if not self.offers_subscriptions_to(lfdi):
            return None
        return r.SubscriptionListLink(href=f"/edev/{device.id}/sub")

    def program_path(self, program: ProgramRecord, device: DeviceRecord | None) -> str:
        if self.quirks.path_style == "envoy" and device is not None:
            return f"/edev/{device.id}/derp/{program.index}"
        return f"/derp/{program.index}"

    def reply_to(self, program: ProgramRecord, device: DeviceRecord | None) -> str:
        if self.quirks.path_style == "envoy" and device is not None:
            return f"/edev/{device.id}/rsps/{program.index}/rsp"
        return f"/rsps/{program.index}/rsp"

    def device_by_lfdi(self, lfdi: int) -> DeviceRecord | None:
        """Find an EndDevice by LFDI, compared numerically (hexBinary: case and leading zeros do
        not matter)."""
        return self._devices_by_lfdi.get(lfdi)

    def device_by_sfdi(self, sfdi: int) -> DeviceRecord | None:
        for device in self.devices:
            if device.sfdi == sfdi:
                return device
        return None

    def _add_device(self, device: DeviceRecord) -> None:
        self.devices.append(device)
        self._devices_by_lfdi[device.lfdi] = device
        owner = device.lfdi if device.registered_by is None else device.registered_by
        self._devices_of.setdefault(owner, []).append(device)

    def acts_for(self, peer: int | None, device: DeviceRecord) -> bool:
        """Whether the certificate ``peer`` may act for ``device`` (IEEE 2030.5 §6.6 / CSIP §5.2:
        a device certificate for its own EndDevice only; an aggregator's for the EndDevices it
        registered)."""
        return peer is not None and (device.lfdi == peer or device.registered_by == peer)

    def is_registered(self, peer: int | None) -> bool:
        """Whether ``peer`` holds an EndDevice here (its own, or one it registered)."""
        return peer is not None and (peer in self._devices_by_lfdi or peer in self._devices_of)

    def program_serves(self, program: ProgramRecord, device: DeviceRecord | None) -> bool:
        """Whether ``program`` is assigned to ``device`` (``None``: an aggregator on a shared
        path, which sees every program one of its EndDevices has)."""
        if program.end_devices is None:
            return True
        if device is None:
            return True
        return device.lfdi in program.end_devices

    def control(self, mrid: int | str) -> ControlRecord | None:
        return self._controls_by_mrid.get(int(mrid, 16) if isinstance(mrid, str) else mrid)

    def _device_param(self, text: str) -> DeviceRecord | None:
        if text.isdigit() and 1 <= int(text) <= len(self.devices):
            return self.devices[int(text) - 1]
        return None

    def _own_device(self, ctx: _Ctx) -> DeviceRecord:
        """The EndDevice a request is about: the one its path names (``/edev/{e}/…``, which
        ``handle`` checked the certificate may act for), else the certificate's own."""
        device = self._viewer(ctx)
        assert device is not None  # handle() refused unregistered peers
        return device

    def _viewer(self, ctx: _Ctx) -> DeviceRecord | None:
        """The EndDevice on whose behalf a request reads a resource: the path's, else the
        certificate's own; ``None`` for an aggregator on a path shared by its EndDevices
        (``/derp/{p}/…``)."""
        text = ctx.params.get("e")
        if text is not None:
            return self._device_param(text)
        return None if ctx.lfdi is None else self.device_by_lfdi(ctx.lfdi)

    def _program_param(self, ctx: _Ctx) -> ProgramRecord:
        text = ctx.params["p"]
        if not (text.isdigit() and 1 <= int(text) <= len(self.programs)):
            raise _NotFound(f"no DERProgram {text!r}")
        return self.programs[int(text) - 1]

    def _doc(self, obj: msgspec.Struct, status: int = 200) -> SimReply:
        # A resource whose value has not changed since it was last served renders to the same
        # bytes (under the same quirks): most polls ask for an unchanged document.
        if self._rendered_with is not self.quirks:
            self._rendered.clear()
            self._rendered_with = self.quirks
        try:
            data = self._rendered.get(obj)
        except TypeError:  # a value that cannot be hashed is rendered every time
            return SimReply(status, self._render(obj))
        if data is None:
            data = self._render(obj)
            if len(self._rendered) >= _RENDERED_CACHE:
                self._rendered.clear()
            self._rendered[obj] = data
        return SimReply(status, data)

    def _render(self, obj: msgspec.Struct) -> bytes:
        data = encode(obj, csipaus_ns=self.quirks.csipaus_ns)
        return apply_text_quirks(data, self.quirks)

    def _page_of(self, ctx: _Ctx, items: Sequence[T]) -> list[T]:
        """The page of a list that ``?s=&l=`` asks for (one item by default under the quirk)."""
        start, limit = _page(ctx.query, len(items), self.quirks.one_item_default_paging)
        return list(items[start : start + limit])

    def _visible_devices(self, ctx: _Ctx) -> list[DeviceRecord]:
        """The EndDevices a certificate sees: its own, or those it registered (an aggregator)."""
        if ctx.lfdi is None:
            return []
        own = self._devices_of.get(ctx.lfdi, [])
        device = self._devices_by_lfdi.get(ctx.lfdi)
        if device is not None and device.registered_by not in (None, ctx.lfdi):
            return [device, *own]  # an aggregator registered it; its own certificate sees it too
        return own

    def _visible_mirrors(self, ctx: _Ctx) -> list[MirrorRecord]:
        return [m for m in self.mirrors if self._owns_mirror(ctx.lfdi, m)]

    def _owns_mirror(self, peer: int | None, mirror: MirrorRecord) -> bool:
        if peer is None:
            return False
        if mirror.owner_lfdi == peer:
            return True
        device = self._devices_by_lfdi.get(mirror.owner_lfdi)
        return device is not None and self.acts_for(peer, device)

    def _fsa_programs(self, device: DeviceRecord | None = None) -> list[ProgramRecord]:
        return sorted(
            (p for p in self.programs if p.in_fsa and self.program_serves(p, device)),
            key=lambda p: (p.primacy, p.index),
        )

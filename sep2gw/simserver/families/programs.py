"""DER programs: DERProgramList, DERProgram, DefaultDERControl, the DERControl and active lists, curves,
and the Responses the devices POST (IEEE 2030.5 §10.10 Response, §11 DER programs)."""

from __future__ import annotations

from sep2gw.simserver.families.base import ServedState
from sep2gw.simserver.records import (
    _DEFAULT_MRID,
    _SUBSCRIBABLE_NONE,
    ControlRecord,
    DeviceRecord,
    ProgramRecord,
    SimReply,
    _Ctx,
    _decode_any,
    _NotFound,
    event_status,
)
from transport.sep2 import resources as r
from transport.sep2.hexbinary import HexBinary8, HexBinary32, HexBinary128


class ProgramResources(ServedState):
    """DER programs: DERProgramList, DERProgram, DefaultDERControl, the DERControl and active lists, curves,"""

    def _program(
        self, program: ProgramRecord, device: DeviceRecord | None, now: float, viewer: int | None
    ) -> r.DERProgram:
        """``viewer``: the reading certificate's LFDI (``subscribable`` is what it may do)."""
        base = self.program_path(program, device)
        return r.DERProgram(
            href=base,
            subscribable=self.subscribable_for(viewer),
            mRID=HexBinary128(program.mrid),
            description=program.description,
            primacy=program.primacy,
            ActiveDERControlListLink=r.ActiveDERControlListLink(
                href=f"{base}/actderc", all=len(self._active(program, now))
            ),
            DefaultDERControlLink=(
                r.DefaultDERControlLink(href=f"{base}/dderc") if program.default else None
            ),
            DERControlListLink=r.DERControlListLink(
                href=f"{base}/derc", all=len(self._listed(program))
            ),
            DERCurveListLink=r.DERCurveListLink(href=f"{base}/dc", all=0),
        )

    def _get_program_list(self, ctx: _Ctx) -> SimReply:
        if ctx.params["f"] != "1":
            return SimReply(404, reason=f"no FunctionSetAssignments {ctx.params['f']!r}")
        device = self._own_device(ctx)
        programs = self._fsa_programs(device)
        page = self._page_of(ctx, programs)
        return self._doc(
            r.DERProgramList(
                href=f"/edev/{device.id}/fsa/1/derp",
                subscribable=self.subscribable_for(ctx.lfdi),
                all=len(programs),
                results=len(page),
                pollRate=self.poll_rates["derp"],
                DERProgram=tuple(self._program(p, device, ctx.now, ctx.lfdi) for p in page),
            )
        )

    def _served_program(self, ctx: _Ctx) -> tuple[ProgramRecord, DeviceRecord | None]:
        """The program a path names, and the EndDevice reading it (``None``: an aggregator on a
        shared path); a program not assigned to that EndDevice is not there for it (404)."""
        program = self._program_param(ctx)
        device = self._viewer(ctx)
        if device is not None and not self.program_serves(program, device):
            raise _NotFound(f"DERProgram {program.index} is not assigned to EndDevice {device.id}")
        if device is None and ctx.lfdi not in self.aggregators:
            raise _NotFound(f"no DERProgram {program.index} for this certificate")
        return program, device

    def _get_program(self, ctx: _Ctx) -> SimReply:
        program, device = self._served_program(ctx)
        return self._doc(self._program(program, device, ctx.now, ctx.lfdi))

    def _get_default(self, ctx: _Ctx) -> SimReply:
        program, device = self._served_program(ctx)
        if program.default is None:
            return SimReply(404, reason=f"DERProgram {program.index} has no DefaultDERControl")
        base = self.program_path(program, device)
        return self._doc(
            r.DefaultDERControl(
                href=f"{base}/dderc",
                subscribable=self.subscribable_for(ctx.lfdi),
                mRID=HexBinary128(_DEFAULT_MRID + program.index),
                description=f"default of {program.key}",
                version=program.default_version,
                DERControlBase=program.default,
                setGradW=program.default_grad_w,
            )
        )

    def _wire_control(
        self,
        program: ProgramRecord,
        control: ControlRecord,
        device: DeviceRecord | None,
        now: float,
        viewer: int | None,
    ) -> r.DERControl:
        base = self.program_path(program, device)
        return r.DERControl(
            href=f"{base}/derc/{control.index}",
            replyTo=self.reply_to(program, device),
            responseRequired=HexBinary8(control.response_required),
            mRID=HexBinary128(control.mrid),
            subscribable=self.subscribable_for(viewer),
            description=control.description,
            creationTime=control.creation_time,
            EventStatus=event_status(control, now, self.quirks),
            interval=r.DateTimeInterval(duration=control.duration, start=control.start),
            randomizeDuration=control.randomize_duration,
            randomizeStart=control.randomize_start,
            DERControlBase=control.base,
            deviceCategory=(
                None if control.device_category is None else HexBinary32(control.device_category)
            ),
        )

    def _ordered(self, controls: list[ControlRecord]) -> list[ControlRecord]:
        """List order of events (IEEE 2030.5 §10.10.3.1): interval.start ascending, then
        creationTime descending, then mRID descending."""
        return sorted(controls, key=lambda c: (c.start, -c.creation_time, -c.mrid))

    def _control_page(
        self,
        ctx: _Ctx,
        program: ProgramRecord,
        device: DeviceRecord | None,
        controls: list[ControlRecord],
        href: str,
        subscribable: int = _SUBSCRIBABLE_NONE,
    ) -> SimReply:
        ordered = self._ordered(controls)
        page = self._page_of(ctx, ordered)
        return self._doc(
            r.DERControlList(
                href=href,
                subscribable=subscribable,
                all=len(ordered),
                results=len(page),
                DERControl=tuple(self._wire_control(program, c, device, ctx.now, ctx.lfdi) for c in page),
            )
        )

    def _get_control_list(self, ctx: _Ctx) -> SimReply:
        program, device = self._served_program(ctx)
        href = self.program_path(program, device) + "/derc"
        return self._control_page(
            ctx, program, device, self._listed(program), href, self.subscribable_for(ctx.lfdi)
        )

    def _listed(self, program: ProgramRecord) -> list[ControlRecord]:
        return [c for c in program.controls if not c.deleted]

    def _active(self, program: ProgramRecord, now: float) -> list[ControlRecord]:
        return [
            c for c in self._listed(program) if event_status(c, now, self.quirks).currentStatus == 1
        ]

    def _get_active_list(self, ctx: _Ctx) -> SimReply:
        program, device = self._served_program(ctx)
        href = self.program_path(program, device) + "/actderc"
        return self._control_page(ctx, program, device, self._active(program, ctx.now), href)

    def _get_control(self, ctx: _Ctx) -> SimReply:
        program, device = self._served_program(ctx)
        text = ctx.params["c"]
        if not (text.isdigit() and 1 <= int(text) <= len(program.controls)):
            return SimReply(404, reason=f"no DERControl {text!r} in DERProgram {program.index}")
        control = program.controls[int(text) - 1]
        if control.deleted:
            return SimReply(
                404, reason=f"DERControl {text!r} of DERProgram {program.index} is gone"
            )
        return self._doc(self._wire_control(program, control, device, ctx.now, ctx.lfdi))

    def _get_curve_list(self, ctx: _Ctx) -> SimReply:
        program, device = self._served_program(ctx)
        href = self.program_path(program, device) + "/dc"
        return self._doc(r.DERCurveList(href=href, all=0, results=0))

    def _post_response(self, ctx: _Ctx) -> SimReply:
        """Responses to events (IEEE 2030.5 §12.1.3): POSTed to the event's replyTo; the subject
        must be an event of that program and endDeviceLFDI an EndDevice the certificate acts for
        (its own; for an aggregator, one it registered: 403 otherwise), to which the program is
        assigned. A control shared by several EndDevices is answered by each for itself."""
        program = self._program_param(ctx)
        parsed = _decode_any(ctx.body, (r.DERControlResponse, r.Response))
        if isinstance(parsed, SimReply):
            return parsed
        control = self._controls_by_mrid.get(int(parsed.subject))
        if control is None or control.program != program.index:
            return SimReply(
                400,
                reason=f"/{type(parsed).__name__}/subject: {int(parsed.subject):032X} is not a "
                f"DERControl of DERProgram {program.index}",
                parsed=parsed,
            )
        named = int(parsed.endDeviceLFDI)
        device = self.device_by_lfdi(named)
        if device is None or not self.acts_for(ctx.lfdi, device):
            if ctx.lfdi not in self.aggregators:
                return SimReply(
                    400,
                    reason=f"/{type(parsed).__name__}/endDeviceLFDI: not the client "
                    "certificate's LFDI",
                    parsed=parsed,
                )
            return SimReply(
                403,
                reason=f"/{type(parsed).__name__}/endDeviceLFDI: {named:040X} is not an "
                "EndDevice this certificate registered",
                parsed=parsed,
            )
        if not self.program_serves(program, device):
            return SimReply(
                400,
                reason=f"/{type(parsed).__name__}/subject: DERProgram {program.index} is not "
                f"assigned to EndDevice {device.id}",
                parsed=parsed,
            )
        viewer = self._viewer(ctx)
        if viewer is not None and viewer is not device:
            return SimReply(
                403,
                reason=f"/{type(parsed).__name__}/endDeviceLFDI: not the EndDevice of {ctx.path}",
                parsed=parsed,
            )
        self.responses.append((int(ctx.now), parsed))
        location = f"{self.reply_to(program, device)}/{len(self.responses)}"
        return SimReply(201, location=location, parsed=parsed)

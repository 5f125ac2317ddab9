"""When DERStatus is PUT: on any change of what it reports, debounced, never missed, retried.

PROTOCOL.md §2 step 7: DERStatus carries its status fields from the first PUT and follows the
device — whichever field changes (``genConnectStatus``, ``storConnectStatus``,
``operationalModeStatus``, ``inverterStatus``, ``alarmStatus``, ``stateOfChargeStatus`` by at least
a threshold), whatever caused it. Pure: the caller passes ``now`` and carries out the PUT
:meth:`StatusReporter.due` hands out, then reports its outcome.

- **Debounce**: the first change not yet sent opens a window of ``debounce_s``; the PUT at its end
  carries the newest status (changes inside the window travel together). A status that returns to
  what was last sent inside the window is not PUT.
- **Never missed**: what was sent is what the server acknowledged; until the newest status is
  acknowledged a PUT stays owed.
- **Retry**: a failed PUT is offered again after a back-off that doubles from ``retry_initial_s``
  to ``retry_max_s`` (and never before the server's Retry-After), with the newest status then.
- **After each control takes effect** (PROTOCOL.md §2.7: re-PUT after each control takes effect):
  a status sampled under limits the last PUT was not made under is PUT (reason ``control``), so
  the server sees what the device did once the control reached it, even when nothing changed.
- **A new DERStatus resource** (the registration walk found its href again) knows nothing: the
  next PUT is a full one (reason ``first``) without waiting for the debounce window.
"""

from __future__ import annotations

import math

import msgspec

from events.der_info import DerStatusInfo

__all__ = ["CONTROL", "FIRST", "ReporterConfig", "StatusPut", "StatusReporter", "status_changes"]

#: The reason of a PUT to a DERStatus that has not been sent anything yet.
FIRST = "first"
#: The reason of a PUT owed because new limits took effect on the device.
CONTROL = "control"

#: ``DerStatusInfo`` fields compared exactly, and their schema names (the reasons logged).
_EXACT: tuple[tuple[str, str], ...] = (
    ("gen_connect_status", "genConnectStatus"),
    ("stor_connect_status", "storConnectStatus"),
    ("operational_mode_status", "operationalModeStatus"),
    ("inverter_status", "inverterStatus"),
    ("alarm_status", "alarmStatus"),
)


class ReporterConfig(msgspec.Struct, frozen=True, kw_only=True):
    debounce_s: float = 1.0
    #: stateOfChargeStatus is PUT again when it moved at least this far from what was sent.
    soc_step_pct: float = 5.0
    retry_initial_s: float = 2.0
    retry_max_s: float = 60.0

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"ReporterConfig.{name}={value!r}: must be a finite number ≥ 0")
        if self.retry_initial_s > self.retry_max_s:
            raise ValueError("ReporterConfig.retry_initial_s is above retry_max_s")


class StatusPut(msgspec.Struct, frozen=True, kw_only=True):
    """A PUT to make now: ``status`` to ``href``, because of ``reasons`` (schema field names that
    changed since the last acknowledged PUT, or ``first``)."""

    href: str
    status: DerStatusInfo
    reasons: tuple[str, ...]
    control_seq: int | None = None


def status_changes(
    sent: DerStatusInfo | None, new: DerStatusInfo, *, soc_step_pct: float
) -> tuple[str, ...]:
    """What differs between the status last acknowledged and ``new`` (PROTOCOL.md §2.7): the
    schema names of the changed fields, ``stateOfChargeStatus`` only once it moved by at least
    ``soc_step_pct`` (or appeared or vanished); ``(FIRST,)`` when nothing was sent yet."""
    if sent is None:
        return (FIRST,)
    changed = [wire for field, wire in _EXACT if getattr(sent, field) != getattr(new, field)]
    old_soc, new_soc = sent.state_of_charge_pct, new.state_of_charge_pct
    if (old_soc is None) != (new_soc is None) or (
        old_soc is not None and new_soc is not None and abs(new_soc - old_soc) >= soc_step_pct
    ):
        changed.append("stateOfChargeStatus")
    return tuple(changed)


class StatusReporter:
    """The DERStatus reporting decisions of one gateway generation (see the module docstring)."""

    __slots__ = (
        "config",
        "_href",
        "_latest",
        "_sent",
        "_due_s",
        "_failures",
        "_in_flight",
        "_control",
        "_control_sent",
    )

    def __init__(self, config: ReporterConfig | None = None) -> None:
        self.config = config or ReporterConfig()
        self._href: str | None = None
        self._latest: DerStatusInfo | None = None
        self._sent: DerStatusInfo | None = None  # as the server acknowledged it
        self._due_s: float | None = None  # when the owed PUT is to be made
        self._failures = 0
        self._in_flight = False
        self._control: int | None = None  # the limits the latest status was sampled under
        self._control_sent: int | None = None  # ... and those of the last acknowledged PUT

    @property
    def sent(self) -> DerStatusInfo | None:
        return self._sent

    def owed(self) -> tuple[str, ...]:
        """The reasons a PUT is owed now (empty: the server has the newest status)."""
        return self._owed(self._latest, self._control)

    def _owed(self, latest: DerStatusInfo | None, control: int | None) -> tuple[str, ...]:
        if latest is None or self._href is None:
            return ()
        changes = status_changes(self._sent, latest, soc_step_pct=self.config.soc_step_pct)
        if self._sent is not None and control != self._control_sent:
            changes += (CONTROL,)
        return changes

    def replans(self, status: DerStatusInfo, *, control: int | None = None) -> bool:
        """Whether :meth:`observed` with ``status`` would move :meth:`next_deadline`: a PUT that
        becomes owed, or one owed that no longer is. Read only. While a PUT is in flight, never:
        its outcome plans again, with the newest status the caller then observes."""
        if self._in_flight:
            return False
        return bool(self._owed(status, control)) != (self._due_s is not None)

    def observed(self, status: DerStatusInfo, now: float, *, control: int | None = None) -> None:
        """The device's status as the hardware actor last reported it; ``control`` identifies the
        limits in force when it was sampled (``ApplyLimits.seq``)."""
        self._latest = status
        self._control = control
        self._plan(now, self.config.debounce_s)

    def target(self, href: str, now: float) -> None:
        """The DERStatus resource to PUT to (the registration walk found it): a full PUT, now."""
        self._href = href
        self._sent = None
        self._failures = 0
        self._due_s = None
        self._plan(now, 0.0)

    def _plan(self, now: float, delay_s: float) -> None:
        if self._in_flight:
            return  # decided when the PUT in flight comes back
        if not self.owed():
            self._due_s = None  # back to what the server has: nothing to send
        elif self._due_s is None:
            # An open window or a back-off keeps its end; a first status does not wait for one.
            self._due_s = now + (0.0 if self._sent is None and not self._failures else delay_s)

    def next_deadline(self) -> float | None:
        """When :meth:`due` will hand out a PUT (``None``: nothing owed, or no target yet)."""
        return None if self._in_flight else self._due_s

    def due(self, now: float) -> StatusPut | None:
        """The PUT to make now, if one is owed and its time has come; the caller must report its
        outcome (:meth:`acknowledged` or :meth:`failed`) before the next one is handed out."""
        if self._in_flight or self._due_s is None or now < self._due_s:
            return None
        reasons = self.owed()
        if not reasons or self._href is None or self._latest is None:
            self._due_s = None
            return None
        self._in_flight = True
        return StatusPut(
            href=self._href, status=self._latest, reasons=reasons, control_seq=self._control
        )

    def acknowledged(self, put: StatusPut, now: float) -> None:
        """The server took ``put``: it has that status now."""
        self._in_flight = False
        self._failures = 0
        self._due_s = None
        if put.href == self._href:
            self._sent = put.status
            self._control_sent = put.control_seq
        # A change observed while the PUT was in flight gets its own window from now.
        self._plan(now, self.config.debounce_s)

    def failed(self, put: StatusPut, now: float, *, retry_after_s: float | None = None) -> float:
        """The PUT failed (refused, network, timeout): offered again after the back-off, with the
        newest status then. Returns the delay chosen."""
        self._in_flight = False
        self._failures += 1
        config = self.config
        delay: float = min(
            config.retry_max_s, config.retry_initial_s * 2.0 ** (self._failures - 1)
        )
        if retry_after_s is not None and retry_after_s > delay:
            delay = min(retry_after_s, config.retry_max_s * 10)
        self._due_s = None
        self._plan(now, delay)
        return delay

    def halted(self) -> None:
        """Traffic to the server was stopped on purpose: nothing more is sent until a new target."""
        self._in_flight = False
        self._href = None
        self._due_s = None

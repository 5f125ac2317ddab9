"""One exit-code convention for every ``sep2gw`` command, and the one place failures become messages.

A command returns its code; an exception that escapes it is reported by :func:`report_failure` as
one line naming what was wrong, never a traceback (``SEP2GW_TRACEBACK=1`` adds it, for a bug
report). Exception groups from task groups are unwrapped to the typed error inside them.

This module imports nothing heavy: an error is classified by the modules already loaded (an
exception of a module that was never imported cannot have been raised).
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Final, TextIO, TypeVar

__all__ = [
    "BAD_INPUT",
    "CHECK_FAILED",
    "EXIT_CODES_HELP",
    "FAILED",
    "INTERRUPTED",
    "OK",
    "classify",
    "first_leaf",
    "leaves",
    "report_failure",
]

#: Done as asked (``log verify``: the log is intact; ``check-config``: usable, warnings aside).
OK: Final = 0
#: A runtime failure: a link or device failed, the gateway gave up, a disk filled, a simulated world
#: broke an invariant, or a bug (reported as an internal error).
FAILED: Final = 1
#: Bad input or configuration: arguments, a configuration, certificate, key, scenario or log file
#: that cannot be used, or a port or log already in use by another process.
BAD_INPUT: Final = 2
#: What was checked is not what it must be: a log that does not verify (``log verify``, and the
#: forensic commands' refusal), a server without a DeviceCapability (``probe``), a device that is
#: not SunSpec (``modbus scan``).
CHECK_FAILED: Final = 3
#: Interrupted by Ctrl-C (SIGINT) before it finished. The long-running commands (``run``,
#: ``sim-server``, ``sim-battery``) take Ctrl-C and SIGTERM as their normal stop and exit 0.
INTERRUPTED: Final = 130

EXIT_CODES_HELP: Final = """\
exit codes (every command):
  0    done (log verify: intact; check-config: usable)
  1    runtime failure (a link or device failed, the gateway gave up, disk full, an invariant
       of a simulated world broken, an internal error)
  2    bad input or configuration (arguments, configuration, certificate, key, scenario or log
       file that cannot be used; a port or log already in use)
  3    a check failed (a log that does not verify, a server without DeviceCapability, a device
       that is not SunSpec)
  130  interrupted by Ctrl-C before it finished (run, sim-server and sim-battery stop cleanly
       with 0 on Ctrl-C or SIGTERM)
"""

E = TypeVar("E", bound=BaseException)

# (module, class name, exit code): the first match wins, so subclasses come before their bases.
_KNOWN: Final[tuple[tuple[str, str, int], ...]] = (
    ("events.errors", "LogFull", FAILED),
    ("events.errors", "ConcurrencyConflict", FAILED),
    ("events.errors", "EventLogError", BAD_INPUT),
    ("sep2gw.config", "ConfigError", BAD_INPUT),
    ("sep2gw.preflight", "PreflightFailed", BAD_INPUT),
    ("transport.tls", "TlsConfigError", BAD_INPUT),
    ("transport.pki", "PkiError", BAD_INPUT),
    ("transport.identity", "IdentityError", BAD_INPUT),
    ("sep2gw.simserver.scenario", "ScenarioError", BAD_INPUT),
    ("actors.supervisor", "SupervisorGaveUp", FAILED),
)


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside ``exc``: itself, or every leaf of nested exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        found: list[BaseException] = []
        for inner in exc.exceptions:
            found.extend(leaves(inner))
        return found
    return [exc]


def first_leaf(exc: BaseException, kind: type[E]) -> E | None:
    """The first exception of ``kind`` in ``exc`` or the groups nested in it."""
    return next((e for e in leaves(exc) if isinstance(e, kind)), None)


def classify(exc: BaseException) -> int | None:
    """The exit code of a known, typed error; ``None`` for anything else."""
    for module_name, class_name, code in _KNOWN:
        module = sys.modules.get(module_name)
        cls = getattr(module, class_name, None) if module is not None else None
        if isinstance(cls, type) and isinstance(exc, cls):
            return code
    if isinstance(exc, OSError):
        return FAILED
    return None


def report_failure(command: str, exc: BaseException, *, err: TextIO | None = None) -> int:
    """Print what went wrong for an exception that escaped ``command``; return the exit code."""
    out = err or sys.stderr
    found = leaves(exc)
    if any(isinstance(e, KeyboardInterrupt) for e in found):
        print(f"sep2gw {command}: interrupted", file=out)
        return INTERRUPTED
    exits = [e for e in found if isinstance(e, SystemExit)]
    if exits:
        code = exits[0].code
        return code if isinstance(code, int) else BAD_INPUT
    typed = [(e, c) for e in found if (c := classify(e)) is not None]
    show = os.environ.get("SEP2GW_TRACEBACK", "") not in ("", "0")
    if typed:
        first, code = typed[0]
        print(f"sep2gw {command}: {_message(first)}", file=out)
        if show:
            traceback.print_exception(exc, file=out)
        return code
    first = found[0]
    print(
        f"sep2gw {command}: internal error: {type(first).__name__}: {_message(first)} "
        "(a bug: please report it with the output of SEP2GW_TRACEBACK=1 sep2gw …)",
        file=out,
    )
    if show:
        traceback.print_exception(exc, file=out)
    return FAILED


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 500 else f"{text[:500]}… ({len(text):,} characters)"

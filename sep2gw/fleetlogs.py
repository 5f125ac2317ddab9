"""A fleet's logs: one directory, one log file per site (issue 19 point 4; decision 0022a).

An aggregator process writes ``<log.dir>/<site>.sep2gw`` for each of its sites (site names
``[a-z0-9][a-z0-9_-]{0,63}``). Every command that reads a LOG also takes such a directory with
``--site NAME``; this module is the one reading of the directory they share:

- a file argument is used as it is (and ``--site`` is refused with it: it picks a site's log in a
  fleet directory, it does not rename a file);
- a directory holding one site log means that site;
- a directory holding several: the command names one with ``--site``, or (``report``, ``status``)
  summarises the fleet; a command that needs one site is refused with the names, a bounded list;
- an unknown ``--site`` is refused naming the closest known names.

What else a fleet directory holds is sorted, never fatal: the SQLite companions and writer lock of
each log (``-wal``, ``-shm``, ``-journal``, ``.lock``) silently, the archives ``sep2gw log rotate``
leaves beside a log (``<site>.<head time>-seq<n>-<hash>.sep2gw``) as archived, anything else as
not a site log, each with a note.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import msgspec

__all__ = [
    "LOG_SUFFIX",
    "MAX_NAMED",
    "SITE_NAME",
    "FleetDir",
    "FleetLogError",
    "Ignored",
    "SiteLog",
    "choose_site",
    "named_list",
    "read_fleet_dir",
    "resolve_log",
]

#: A site's name as the fleet's configuration gives it (and its log file's stem).
SITE_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
LOG_SUFFIX: Final = ".sep2gw"
#: How many site names an error message lists before "and N more".
MAX_NAMED: Final = 10
#: The files SQLite and the writer lock keep beside a log (``events.sqlite_store``, ``log_lock``).
_COMPANIONS: Final = ("-wal", "-shm", "-journal", ".lock")
#: ``sep2gw.logrotate.archive_name``: ``<stem>.<YYYYmmddTHHMMSSZ>-seq<n>-<12 hex>.sep2gw``.
_ARCHIVE: Final = re.compile(r"(?P<site>.+)\.\d{8}T\d{6}Z-seq\d+-[0-9a-f]{12}\.sep2gw")


class FleetLogError(ValueError):
    """The LOG argument and ``--site`` name no usable log: a bad input (exit 2), worded for people."""


class SiteLog(msgspec.Struct, frozen=True):
    """One site's log in a fleet directory."""

    site: str
    path: Path


class Ignored(msgspec.Struct, frozen=True):
    """A file of a fleet directory that is not a site's current log, and why."""

    name: str
    why: str


class FleetDir(msgspec.Struct, frozen=True):
    """A fleet directory read: its site logs in name order and the files set aside."""

    path: Path
    sites: tuple[SiteLog, ...]
    ignored: tuple[Ignored, ...] = ()

    def names(self) -> list[str]:
        return [s.site for s in self.sites]


def read_fleet_dir(path: Path) -> FleetDir:
    """The site logs of the directory ``path`` (decision 0022a: ``<site>.sep2gw``), in name order.

    Raises :class:`FleetLogError` when the directory cannot be listed. A directory without any
    site log is returned empty; the caller says what that means for it."""
    try:
        entries = sorted(path.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise FleetLogError(f"{path}: cannot list the folder: {exc.strerror or exc}") from None
    sites: list[SiteLog] = []
    ignored: list[Ignored] = []
    for entry in entries:
        name = entry.name
        if name.startswith("."):
            continue
        if any(name.endswith(LOG_SUFFIX + c) for c in _COMPANIONS) or name.endswith(".partial"):
            continue
        archive = _ARCHIVE.fullmatch(name)
        if archive is not None:
            ignored.append(
                Ignored(name, f"an archived log of site {archive['site']} (sep2gw log rotate)")
            )
            continue
        if not name.endswith(LOG_SUFFIX):
            ignored.append(Ignored(name, f"not a site log (a site's log is <site>{LOG_SUFFIX})"))
            continue
        site = name[: -len(LOG_SUFFIX)]
        if not SITE_NAME.fullmatch(site):
            ignored.append(
                Ignored(
                    name,
                    f"{site!r} is not a site name (lower-case letters, digits, '_' and '-', "
                    "at most 64, starting with a letter or digit)",
                )
            )
            continue
        if entry.is_dir():
            ignored.append(Ignored(name, "a folder, not a log file"))
            continue
        sites.append(SiteLog(site, entry))
    return FleetDir(path, tuple(sites), tuple(ignored))


def named_list(names: Sequence[str], limit: int = MAX_NAMED) -> str:
    """``a, b, c`` — at most ``limit`` names, then ``and N more``."""
    shown = ", ".join(names[:limit])
    more = len(names) - limit
    return f"{shown} and {more} more" if more > 0 else shown


def choose_site(fleet: FleetDir, site: str) -> SiteLog:
    """The log of ``site`` in ``fleet``; an unknown name is refused naming the closest known ones."""
    for candidate in fleet.sites:
        if candidate.site == site:
            return candidate
    names = fleet.names()
    if not names:
        raise FleetLogError(f"--site {site}: {fleet.path} holds no site log (<site>{LOG_SUFFIX})")
    close = difflib.get_close_matches(site, names, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise FleetLogError(
        f"--site {site}: no such site in {fleet.path}{hint} "
        f"(its {len(names)} site(s): {named_list(names)})"
    )


def resolve_log(path: Path, site: str | None, *, fleet_ok: bool = False) -> Path | FleetDir:
    """The log a command reads: ``path`` itself when it is not a directory (the command then says
    what is wrong with it, as for any log file), else the site's log in the fleet directory.

    With several site logs and no ``site``, the fleet itself when ``fleet_ok`` (the commands that
    summarise a fleet), else :class:`FleetLogError` listing the site names."""
    if not path.is_dir():
        if site is not None:
            raise FleetLogError(
                f"--site {site}: {path} is a log file, not a fleet log directory "
                "(--site picks a site's log in a directory of <site>.sep2gw files)"
            )
        return path
    fleet = read_fleet_dir(path)
    if site is not None:
        return choose_site(fleet, site).path
    if len(fleet.sites) == 1:
        return fleet.sites[0].path
    if not fleet.sites:
        notes = f" ({len(fleet.ignored)} other file(s) set aside)" if fleet.ignored else ""
        raise FleetLogError(f"{path} is a folder holding no site log (<site>{LOG_SUFFIX}){notes}")
    if fleet_ok:
        return fleet
    raise FleetLogError(
        f"{path} is a fleet log directory of {len(fleet.sites)} sites: name one with --site "
        f"({named_list(fleet.names())})"
    )

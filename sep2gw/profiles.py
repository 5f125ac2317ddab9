"""A configured profile name and what it selects in each layer (PROTOCOL.md §1).

One set of names everywhere (issue 20 point 6): the configuration's ``server.profile`` and the
``--profile`` option of ``certs init``, ``id`` and ``probe`` take the same four. ``"2018"`` (the
configuration's old name of the 2030.5 core profile) is still accepted, with a warning, so an
existing site file keeps working.
"""

from __future__ import annotations

from typing import Final

import msgspec

from statemachines.responses import CORE_2018, CSIP, CSIP_AUS, SAPN, ResponseProfile
from transport import identity
from transport.identity import IdentityProfile
from transport.sep2.versions import CSIPAUS_VERSIONS, V1_2, CsipAusVersion

__all__ = [
    "DEPRECATED_PROFILE_NAMES",
    "PROFILES",
    "PROFILE_NAMES",
    "Profile",
    "allowed_versions",
    "canonical_profile",
    "deprecation_of",
    "profile_named",
]


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    identity: IdentityProfile
    responses: ResponseProfile
    #: The CSIP-AUS versions the profile allows, oldest first: the first is written until the
    #: server's version is learned (issue 18 point 2); ``server.csipaus_versions`` narrows it.
    csipaus_versions: tuple[CsipAusVersion, ...] = (V1_2,)
    #: Whether the walk tries CSIP-AUS v1.3 service discovery (``/.well-known/csipaus``) first.
    well_known: bool = False


#: The profiles by their one canonical name, in the order ``--help`` lists them.
PROFILES: Final = {
    "2030.5": Profile(name="2030.5", identity=identity.CORE_2030_5, responses=CORE_2018),
    "csip": Profile(name="csip", identity=identity.CSIP, responses=CSIP),
    "csip-aus": Profile(
        name="csip-aus",
        identity=identity.CSIP_AUS,
        responses=CSIP_AUS,
        csipaus_versions=CSIPAUS_VERSIONS,
        well_known=True,
    ),
    "sapn": Profile(
        name="sapn",
        identity=identity.CSIP_AUS,
        responses=SAPN,
        csipaus_versions=CSIPAUS_VERSIONS,
        well_known=True,
    ),
}
PROFILE_NAMES: Final = tuple(PROFILES)

#: Old spellings still accepted, each with the canonical name it stands for.
DEPRECATED_PROFILE_NAMES: Final = {"2018": "2030.5"}


def canonical_profile(name: str) -> str:
    """The canonical name of ``name`` (itself, or what a deprecated alias stands for)."""
    return DEPRECATED_PROFILE_NAMES.get(name, name)


def profile_named(name: str) -> Profile:
    """The profile called ``name``, a canonical name or a deprecated alias; KeyError otherwise."""
    return PROFILES[canonical_profile(name)]


def deprecation_of(name: str) -> str | None:
    """The warning for a deprecated spelling (``None`` for a canonical name)."""
    canonical = DEPRECATED_PROFILE_NAMES.get(name)
    if canonical is None:
        return None
    return f"{name!r} is the old name of {canonical!r}; write {canonical!r} (the same profile)"


def allowed_versions(
    profile: Profile, configured: tuple[str, ...] = ()
) -> tuple[CsipAusVersion, ...]:
    """The CSIP-AUS versions a site may speak: the profile's, narrowed to ``configured`` (the
    configuration's ``server.csipaus_versions``, checked against the profile) when it names any;
    the profile's order is kept (the first is written until the server's is learned)."""
    if not configured:
        return profile.csipaus_versions
    return tuple(v for v in profile.csipaus_versions if v.name in configured)

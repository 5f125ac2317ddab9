"""A configured profile name and what it selects in each layer (PROTOCOL.md §1)."""

from __future__ import annotations

from typing import Final

import msgspec

from statemachines.responses import CORE_2018, CSIP, CSIP_AUS, SAPN, ResponseProfile
from transport import identity
from transport.identity import IdentityProfile
from transport.sep2.versions import CSIPAUS_VERSIONS, V1_2, CsipAusVersion

__all__ = ["PROFILES", "Profile", "allowed_versions"]


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    identity: IdentityProfile
    responses: ResponseProfile
    #: The CSIP-AUS versions the profile allows, oldest first: the first is written until the
    #: server's version is learned (issue 18 point 2); ``server.csipaus_versions`` narrows it.
    csipaus_versions: tuple[CsipAusVersion, ...] = (V1_2,)
    #: Whether the walk tries CSIP-AUS v1.3 service discovery (``/.well-known/csipaus``) first.
    well_known: bool = False


PROFILES: Final = {
    "2018": Profile(name="2018", identity=identity.CORE_2030_5, responses=CORE_2018),
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


def allowed_versions(
    profile: Profile, configured: tuple[str, ...] = ()
) -> tuple[CsipAusVersion, ...]:
    """The CSIP-AUS versions a site may speak: the profile's, narrowed to ``configured`` (the
    configuration's ``server.csipaus_versions``, checked against the profile) when it names any;
    the profile's order is kept (the first is written until the server's is learned)."""
    if not configured:
        return profile.csipaus_versions
    return tuple(v for v in profile.csipaus_versions if v.name in configured)

"""A configured profile name and what it selects in each layer (PROTOCOL.md §1)."""

from __future__ import annotations

from typing import Final

import msgspec

from statemachines.responses import CORE_2018, CSIP, CSIP_AUS, SAPN, ResponseProfile
from transport import identity
from transport.identity import IdentityProfile

__all__ = ["PROFILES", "Profile"]


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    identity: IdentityProfile
    responses: ResponseProfile


PROFILES: Final = {
    "2018": Profile(name="2018", identity=identity.CORE_2030_5, responses=CORE_2018),
    "csip": Profile(name="csip", identity=identity.CSIP, responses=CSIP),
    "csip-aus": Profile(name="csip-aus", identity=identity.CSIP_AUS, responses=CSIP_AUS),
    "sapn": Profile(name="sapn", identity=identity.CSIP_AUS, responses=SAPN),
}

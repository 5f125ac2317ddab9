"""Battery-side drivers: the interface the hardware actor uses and its implementations."""

from actors.drivers.base import (
    ApplyReport,
    DerDriver,
    DriverError,
    Nameplate,
    Telemetry,
    WriteNotVerified,
)
from actors.drivers.modbus_client import ModbusTcpClient
from actors.drivers.sunspec import NotSunSpec, SunSpecDriver, discover
from actors.drivers.tags import TagDriver, TagMap, TagMapError, TagReadError

__all__ = [
    "ApplyReport",
    "DerDriver",
    "DriverError",
    "ModbusTcpClient",
    "Nameplate",
    "NotSunSpec",
    "SunSpecDriver",
    "TagDriver",
    "TagMap",
    "TagMapError",
    "TagReadError",
    "Telemetry",
    "WriteNotVerified",
    "discover",
]

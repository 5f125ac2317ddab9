"""Simulated devices: a battery with physics on a site with load, PV and a meter, and its SunSpec
Modbus TCP server."""

from sep2gw.sim.battery import BatteryParams, SimBattery, SiteParams

__all__ = ["BatteryParams", "SimBattery", "SiteParams"]

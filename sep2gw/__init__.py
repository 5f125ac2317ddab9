"""sep2gw: an IEEE 2030.5 (SEP 2.0 / CSIP / CSIP-AUS) DER client for battery gateways."""

__all__ = ["__version__"]

__version__ = "0.1.0"

"""Wire formats and links: 2030.5 resources and XML codec, identity, TLS, HTTP, Modbus. Imports only
``events``."""

__all__: list[str] = []

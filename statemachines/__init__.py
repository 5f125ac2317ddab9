"""Pure, synchronous decisions: lifecycle machines and scheduling rules. Imports only ``events``."""

__all__: list[str] = []

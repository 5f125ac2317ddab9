"""How a long-running command stops: Ctrl-C (SIGINT) or SIGTERM cancels it cleanly, exit 0.

``run``, ``sim-server`` and ``sim-battery`` serve until stopped; a stop asked for is their normal
end, not a failure (``sep2gw.exits``). Only the main thread receives signals, as in every CLI run.
"""

from __future__ import annotations

import signal

import anyio

__all__ = ["stop_on_signals"]


async def stop_on_signals(cancel: anyio.CancelScope) -> None:
    """Cancel ``cancel`` at the first SIGINT or SIGTERM (start it in the scope's task group)."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            cancel.cancel()
            return

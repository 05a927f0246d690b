"""Where "now" comes from, injected so logic never calls ``time.time()`` itself.

The live daemon uses :class:`SystemClock`; the replay server drives its own virtual
clock (:class:`bot.replay.clock.ReplayClock`) and tests use a clock they set by hand.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the current time as UTC epoch milliseconds."""

    def now_ms(self) -> int:
        """Epoch milliseconds now (wall time live, virtual time in a replay)."""
        ...


class SystemClock:
    """The machine's wall clock."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

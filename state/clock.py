"""Where "now" comes from, injected so logic never reads the wall clock itself.

Every time the ledger records (``decided_ms``, session rows, retrain runs, model rows) is
read from one :class:`Clock`: the daemon's. Live that is :class:`SystemClock`; a replay
injects its virtual clock (:class:`bot.replay.market.ReplayClock`) and tests a clock they
set by hand, so a replayed run writes one timeline. It lives here, beside the ledger it
stamps, so that both the trainer (retraining, the model registry) and the bot can take it.
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


SYSTEM_CLOCK = SystemClock()
"""The default where no other clock is injected (command-line tools acting now)."""

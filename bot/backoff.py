"""Jittered exponential back-off: one schedule for websocket reconnects and REST retries."""

from __future__ import annotations

import random
from collections.abc import Generator


def jittered_backoff(min_s: float, max_s: float, rng: random.Random) -> Generator[float, None, None]:
    """Delays ``min_s, 2·min_s, 4·min_s ...`` capped at ``max_s``, each scaled by a random
    factor in [0.5, 1] ("equal jitter"), so many clients that lost the same server do not
    come back in lock-step, while no delay is ever shorter than half the nominal one.
    Infinite: the caller decides when to give up.
    """
    nominal = min_s
    while True:
        yield nominal * rng.uniform(0.5, 1.0)
        nominal = min(max_s, nominal * 2)

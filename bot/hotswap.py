"""Hot-swap: the accounts that follow the registry trade its promoted models.

The daemon calls :meth:`HotSwapper.apply` with the promoted rows after every retrain and
on a slow timer (for ``shadow models promote`` run from another process). For each
account with strategy ``registry`` and each symbol whose promoted model differs from the
one serving, the model is verified (sha256 recorded at publish time, feature metadata)
and loaded in a worker thread, then handed to :meth:`bot.engine.SymbolEngine.serve` on the
event loop. A candle's decisions run synchronously on that loop, so the swap always falls
between two candles: every decision is taken, and recorded, by exactly one model version.
Accounts pinned to a version (``registry:v0003``) or trading a spec never swap.

A model that fails verification or loading is refused once, with a clear error in the
log; the account keeps trading with the model it had.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from bot.engine import ServingStrategy, SymbolEngine
from bot.serving import cap_torch_threads, load_registry_model
from state.records import ModelEntry
from trainer.models.store import promoted_model

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SwapEvent:
    """One account switched models on one symbol; ``swapped_ns`` is ``time.perf_counter_ns()``
    at the switch."""

    account: str
    symbol: str
    previous: str
    version: str
    swapped_ns: int


class HotSwapper:
    """Applies promotions to ``engines`` (see the module docstring).

    Args:
        engines: the daemon's engines by symbol.
        followers: the accounts that trade the registry's promoted model.
        lookback_window: the observation's lookback (a model built for another is refused).
        torch_threads: torch's thread cap, reapplied after a load (a model served through SB3 imports torch).
        category: the ``[exchange]`` market category (a model that can go short is refused on spot).
    """

    def __init__(self, engines: Mapping[str, SymbolEngine], followers: Collection[str], lookback_window: int,
                 torch_threads: int, category: str = "linear") -> None:
        self.engines = engines
        self.followers = tuple(followers)
        self.lookback_window = lookback_window
        self.category = category
        self.torch_threads = torch_threads
        self.swaps: list[SwapEvent] = []
        self._refused: set[tuple[str, str]] = set()
        self._lock = asyncio.Lock()

    async def apply(self, promoted: Sequence[ModelEntry]) -> list[SwapEvent]:
        """Serve each symbol's promoted model (``promoted``: the registry's promoted rows).
        Calls are serialised: the poll and a finished retrain may ask at the same moment."""
        async with self._lock:
            return await self._apply(promoted)

    async def _apply(self, promoted: Sequence[ModelEntry]) -> list[SwapEvent]:
        loaded: dict[str, ServingStrategy] = {}
        events = []
        for symbol, engine in self.engines.items():
            entry = promoted_model(promoted, symbol, engine.interval)
            for name in self.followers:
                account = engine.accounts.get(name)
                if entry is None or account is None or entry.version == account.serving.model_version:
                    continue
                serving = loaded.get(entry.version) or await self._load(symbol, entry, account.serving)
                if serving is None:
                    continue
                loaded[entry.version] = serving
                previous = account.serving
                engine.serve(name, serving)
                event = SwapEvent(name, symbol, previous.model_version or previous.label, entry.version,
                                  time.perf_counter_ns())
                events.append(event)
                log.info("%s %s: now serving model %s (was %s); the next candle is decided by it", name, symbol,
                         event.version, event.previous)
        self.swaps.extend(events)
        return events

    async def _load(self, symbol: str, entry: ModelEntry, current: ServingStrategy) -> ServingStrategy | None:
        key = (entry.version, entry.sha256)
        if key in self._refused:
            return None
        try:
            serving = await asyncio.to_thread(load_registry_model, entry, self.lookback_window,
                                              category=self.category, interval=self.engines[symbol].interval)
        except Exception as exc:  # a refused model must never stop the daemon
            self._refused.add(key)
            log.error("%s: refusing promoted model %s: %s; still serving %s", symbol, entry.version, exc,
                      current.model_version or current.label)
            return None
        cap_torch_threads(self.torch_threads)
        return serving

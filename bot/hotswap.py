"""Hot-swap: the running engines follow the registry's promoted models.

The daemon calls :meth:`HotSwapper.apply` with the promoted rows after every retrain and
on a slow timer (for ``shadow models promote`` run from another process). For each
symbol whose promoted model differs from the one serving, the model is verified (sha256
recorded at publish time, feature metadata) and loaded in a worker thread, then handed
to :meth:`bot.engine.SymbolEngine.serve` on the event loop. A candle's decision runs
synchronously on that loop, so the swap always falls between two candles: every
decision is taken, and recorded, by exactly one model version.

A model that fails verification or loading is refused once, with a clear error in the
log; the symbol keeps trading with the model it had.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.engine import ServingStrategy, SymbolEngine
from bot.serving import cap_torch_threads, load_registry_model
from state.records import ModelEntry
from trainer.models.store import promoted_model

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SwapEvent:
    """One symbol switched models; ``swapped_ns`` is ``time.perf_counter_ns()`` at the switch."""

    symbol: str
    previous: str
    version: str
    swapped_ns: int


class HotSwapper:
    """Applies promotions to ``engines`` (see the module docstring).

    Args:
        engines: the daemon's engines by symbol.
        lookback_window: the observation's lookback (a model built for another is refused).
        torch_threads: torch's thread cap, reapplied after a load (the first model imports torch).
        category: the ``[exchange]`` market category (a model that can go short is refused on spot).
    """

    def __init__(self, engines: Mapping[str, SymbolEngine], lookback_window: int, torch_threads: int,
                 category: str = "linear") -> None:
        self.engines = engines
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
            if entry is None or entry.version == engine.serving.model_version:
                continue
            serving = loaded.get(entry.version) or await self._load(symbol, entry, engine.serving)
            if serving is None:
                continue
            loaded[entry.version] = serving
            previous = engine.serving
            engine.serve(serving)
            event = SwapEvent(symbol, previous.model_version or previous.label, entry.version, time.perf_counter_ns())
            events.append(event)
            log.info("%s: now serving model %s (was %s); the next candle is decided by it", symbol, event.version,
                     event.previous)
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

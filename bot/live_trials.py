"""Promotion earned live: the daemon's side of a live trial.

A retrained candidate that passed the holdout gate with ``[retrain] live_trial_candles = N``
is recorded as a pending trial (:meth:`state.trial_rows.TrialRows.open_trial`). Between two
candles the daemon starts it: on each of the trial's symbols the candidate joins as the
challenger account (``trial:VERSION``) at the next candle, with the incumbent account's
money settings and limits and, as initial balance, the incumbent's equity at that close
(:meth:`bot.engine.SymbolEngine.join`), so their results compare directly. The challenger
then decides every candle in the same transaction as every other account. After its N-th
decision on a symbol it stops trading there (its rows stay readable); once every symbol is
done, the live verdict (:func:`trainer.retrain.live_verdict.judge_trial`) promotes the
candidate, and the accounts that follow the registry swap to it between two candles, or
rejects it. Verdict, model status and the retraining run's outcome are one transaction.

A restart or a SIGKILL in the middle resumes the trial where it stood: the challenger is
restored from its last decision (or joins again if it had none), its decisions are counted
from the ledger, and a trial whose candles were all decided is judged at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from bot.engine import ServingStrategy, SymbolEngine
from bot.serving import load_registry_model, pinned_model
from config.accounts import TradingAccount
from state.clock import Clock
from state.database import connect_reader
from state.decision_log import snapshot
from state.ledger import Ledger
from state.readers import list_models
from state.records import DecisionRecord, LiveTrial, ModelStatus, ResumePoint, TrialStatus
from trainer.retrain.live_verdict import LiveVerdict, judge_trial

log = logging.getLogger(__name__)


@dataclass
class _Trading:
    """A trial the daemon runs: its decisions so far per symbol."""

    trial: LiveTrial
    decided: dict[str, int] = field(default_factory=dict)

    def done(self, symbol: str) -> bool:
        return self.decided.get(symbol, 0) >= self.trial.candles


class LiveTrials:
    """Runs the ledger's live trials in the daemon's engines (see the module docstring).

    Args:
        ledger: the daemon's ledger writer.
        engines: the daemon's engines by symbol.
        accounts: the configured accounts by name (a trial's incumbent is one of them).
        lookback_window: the observation's lookback (the candidate is checked against it).
        category: the ``[exchange]`` market category (a candidate that can go short is refused
            on spot, as any model the daemon serves).
        clock: the daemon's clock.
        on_promoted: awaited after a promotion (the registry check that swaps the followers).
    """

    def __init__(self, ledger: Ledger, engines: Mapping[str, SymbolEngine], accounts: Mapping[str, TradingAccount],
                 lookback_window: int, *, category: str = "linear", clock: Clock,
                 on_promoted: Callable[[], Awaitable[None]]) -> None:
        self.ledger = ledger
        self.engines = engines
        self.accounts = accounts
        self.lookback_window = lookback_window
        self.category = category
        self.clock = clock
        self.on_promoted = on_promoted
        self.verdicts: list[tuple[LiveTrial, LiveVerdict]] = []
        self._trading: dict[int, _Trading] = {}
        self._judged: set[int] = set()

    @property
    def active(self) -> bool:
        """A trial is running: the next retrain waits for its verdict."""
        return bool(self._trading)

    async def resume(self) -> None:
        """At start-up: carry on every trial the ledger says is pending or running."""
        await self._start(await self.ledger.resume_points())

    async def start_pending(self) -> None:
        """Start the trials recorded since the last check (by this daemon's retrain or another process's)."""
        await self._start({})

    async def _start(self, points: Mapping[tuple[str, str], ResumePoint]) -> None:
        for trial in await self.ledger.trials.active():
            if trial.trial_id not in self._trading and trial.trial_id not in self._judged:
                await self._begin(trial, points)

    async def _begin(self, trial: LiveTrial, points: Mapping[tuple[str, str], ResumePoint]) -> None:
        incumbent = self.accounts.get(trial.incumbent_account)
        missing = [s for s in trial.symbols if s not in self.engines
                   or incumbent is None or trial.incumbent_account not in self.engines[s].accounts]
        if incumbent is None or missing:
            await self._retire(trial, f"not judged: account {trial.incumbent_account} does not trade "
                                      f"{', '.join(missing) or ', '.join(trial.symbols)} in this configuration")
            return
        try:
            serving = await asyncio.to_thread(self._load, trial)
        except Exception as exc:  # a refused model never stops the daemon
            await self._retire(trial, f"not judged: the candidate cannot be served ({exc})")
            return
        trading = _Trading(trial, await self.ledger.decision_counts(trial.challenger_account))
        for symbol in trial.symbols:
            if not trading.done(symbol):
                self._seat(trial, incumbent, serving, symbol, points.get((trial.challenger_account, symbol)))
        if trial.status == TrialStatus.PENDING:
            await self.ledger.trials.start(trial.trial_id, at_ms=self.clock.now_ms())
        self._trading[trial.trial_id] = trading
        log.info("live trial %d: %s trades as account %s beside account %s for %d candles of %s (%s)",
                 trial.trial_id, trial.candidate_version, trial.challenger_account, trial.incumbent_account,
                 trial.candles, ", ".join(trial.symbols),
                 ", ".join(f"{s} {trading.decided.get(s, 0)} done" for s in trial.symbols))
        if all(trading.done(s) for s in trial.symbols):
            await self._judge(trading)

    def _load(self, trial: LiveTrial) -> ServingStrategy:
        """The candidate, verified (sha256, metadata) and loaded like any registry model."""
        with closing(connect_reader(self.ledger.path)) as conn:
            entry = pinned_model(trial.candidate_version, list_models(conn), trial.challenger_account)
        return load_registry_model(entry, self.lookback_window, category=self.category,
                                   interval=self.engines[trial.symbols[0]].interval)

    def _seat(self, trial: LiveTrial, incumbent: TradingAccount, serving: ServingStrategy, symbol: str,
              point: ResumePoint | None) -> None:
        """The challenger on ``symbol``: restored where it stopped, or joining at the next candle."""
        engine = self.engines[symbol]
        if point is None:
            engine.join(trial.challenger_account, incumbent.env, incumbent.risk, serving,
                        equity_of=incumbent.name)
            return
        env = incumbent.env.model_copy(update={"initial_balance": point.initial_balance})
        engine.add_account(trial.challenger_account, env, incumbent.risk, serving).restore(point.state, point.risk)

    async def on_committed(self, symbol: str, records: list[DecisionRecord]) -> None:
        """Count the challengers' decisions just committed; a challenger that reached its
        candles leaves the symbol before the next candle; a finished trial is judged."""
        for trading in list(self._trading.values()):
            trial = trading.trial
            if not any(r.account == trial.challenger_account for r in records):
                continue
            trading.decided[symbol] = trading.decided.get(symbol, 0) + 1
            if trading.done(symbol):
                self.engines[symbol].remove_account(trial.challenger_account)
                if all(trading.done(s) for s in trial.symbols):
                    await self._judge(trading)

    async def _judge(self, trading: _Trading) -> None:
        trial = trading.trial
        del self._trading[trial.trial_id]
        self._judged.add(trial.trial_id)
        verdict = await asyncio.to_thread(_verdict, self.ledger.path, trial)
        retire = [] if not verdict.promote else await self._replaced_per_symbol(trial)
        await self.ledger.trials.finish(trial, promote=verdict.promote, reason=verdict.reason, metrics=verdict.metrics,
                                        at_ms=self.clock.now_ms(), retire=retire)
        self.verdicts.append((trial, verdict))
        log.info("live trial %d: %s %s: %s", trial.trial_id, trial.candidate_version,
                 "promoted" if verdict.promote else "rejected", verdict.reason)
        if verdict.promote:
            await self.on_promoted()

    async def _replaced_per_symbol(self, trial: LiveTrial) -> list[str]:
        """A shared candidate replaces the per-symbol models promoted on its symbols."""
        models = await self.ledger.registry.list_models()
        candidate = next((m for m in models if m.version == trial.candidate_version), None)
        if candidate is None or candidate.symbol is not None:
            return []
        return [m.version for m in models if m.status == ModelStatus.PROMOTED and m.symbol in trial.symbols]

    async def _retire(self, trial: LiveTrial, reason: str) -> None:
        self._judged.add(trial.trial_id)
        log.error("live trial %d: %s %s", trial.trial_id, trial.candidate_version, reason)
        await self.ledger.trials.finish(trial, promote=False, reason=reason, metrics={}, at_ms=self.clock.now_ms())


def _verdict(db: Path, trial: LiveTrial) -> LiveVerdict:
    """The verdict, read through a connection of its own (the decisions are committed)."""
    with closing(connect_reader(db)) as conn, snapshot(conn):
        return judge_trial(conn, trial)

"""``shadow verify``: prove on a live ledger that the daemon decided what the backtest decides.

For each symbol, the candles the ledger stored go through the ordinary backtest
(:func:`trainer.evaluation.backtest.run_backtest` on the training env, with the risk guard) from the
ledger's first decision, with the ``[env]`` and ``[risk]`` settings its daemon sessions
recorded (:mod:`trainer.verification.sessions`) and the very strategies that took each decision
(:mod:`trainer.verification.deciders`). A :class:`strategies.schedule.StrategySchedule` hands
each candle to the strategy the ledger says decided it, hot-swaps and rollbacks included,
so there is no second decision path. Decisions before ``--from`` are replayed with their
recorded actions instead (:class:`strategies.schedule.RecordedActions`): the models that
took them may be gone, and the account the re-run starts from at ``--from`` is then the
one the ledger's own actions built. Every decision is then compared bit for bit with the
ledger's (:mod:`trainer.verification.divergence`).

The ledger's last decided candle has no successor to step the env onto; verify lends it
a flat copy of that candle, on which nothing compared depends. The env's training end
(blow-up below ``max_loss``) is off: the daemon has no episodes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import numpy as np
import pandas as pd

from config.errors import UserError
from config.settings import EnvSettings, Settings
from env.candles import CandleDataError, format_ms, infer_interval_ms
from env.features import warmup_prefix
from env.funding import FUNDING_RATE_COLUMN, due_between
from state.decision_log import DecidedSymbol, LoggedDecision, decided_symbols, read_decision_log, run_settings, snapshot
from state.readers import funding_settlements, list_models, read_candles
from state.records import ModelEntry
from trainer.evaluation.backtest import make_env, run_backtest
from trainer.verification.deciders import LedgerStrategies, decider_label, ledger_schedule
from trainer.verification.divergence import Divergence, ObservationWitness, first_divergence
from trainer.verification.sessions import LedgerSessions

COMPARED = "actions, obs_hash, fills, equity"
"""What agreeing means, as the report says it (risk events are compared too)."""


class VerifyError(UserError):
    """A ledger whose decisions cannot be replayed as asked (no decisions, a gap in the
    candles); the message names the ledger and the fix."""


@dataclass(frozen=True, slots=True)
class SymbolVerdict:
    """One symbol's result.

    Args:
        symbol / interval: the market.
        decisions: the ledger's decisions compared.
        replayed: of these, the ones before ``--from``, replayed with their recorded actions.
        first_ms / last_ms: the first and last compared candle.
        rerun_from_ms: the first candle whose strategy was re-run.
        deciders: who took the re-run decisions, turn by turn: ``(label, decisions)``.
        settings_source: where the env and risk settings came from.
        divergence: the first difference, or ``None`` when all agree bit for bit.
    """

    symbol: str
    interval: str
    decisions: int
    replayed: int
    first_ms: int
    last_ms: int
    rerun_from_ms: int
    deciders: tuple[tuple[str, int], ...]
    settings_source: str
    divergence: Divergence | None


def verify_ledger(conn: sqlite3.Connection, db: Path, configured: Settings, *, symbol: str | None = None,
                  start_ms: int | None = None, end_ms: int | None = None) -> list[SymbolVerdict]:
    """Verify every decided symbol of the ledger (or ``symbol``), decisions in ``[start_ms, end_ms)``.

    Args:
        conn: a read-only connection (:func:`state.database.connect_reader`).
        db: the ledger's path, for messages.
        configured: the settings that stand in for sessions that recorded none (ledgers
            written before schema version 4).
        symbol: only this symbol.
        start_ms: re-run the strategies from this candle on (``--from``); earlier decisions
            are replayed with their recorded actions.
        end_ms: compare decisions before this candle only (``--to``).

    Raises:
        VerifyError: no decisions (of ``symbol``, in the range), a gap in the candles.
        SessionSettingsError: settings that do not load, or that changed between sessions.
        StrategyRebuildError: a strategy or model that cannot be rebuilt (missing, changed).
    """
    with snapshot(conn):
        held = decided_symbols(conn)
        if not held:
            raise VerifyError(f"ledger {db}: no decisions yet; nothing to verify")
        chosen = [s for s in held if symbol in (None, s.symbol)]
        if not chosen:
            names = ", ".join(f"{s.symbol} ({s.decisions:,} decisions)" for s in held)
            raise VerifyError(f"ledger {db}: no decisions for {symbol}; it has {names}")
        sessions = LedgerSessions(db, run_settings(conn), configured)
        models = {m.version: m for m in list_models(conn)}
        return [_verify_symbol(conn, db, s, sessions, models, start_ms, end_ms) for s in chosen]


def _verify_symbol(conn: sqlite3.Connection, db: Path, held: DecidedSymbol, sessions: LedgerSessions,
                   models: dict[str, ModelEntry], start_ms: int | None, end_ms: int | None) -> SymbolVerdict:
    name = f"{held.symbol} {held.interval}"
    log = read_decision_log(conn, held.symbol, end_ms=None if end_ms is None else end_ms - 1)
    rerun_from = next((i for i, d in enumerate(log) if start_ms is None or d.open_time_ms >= start_ms), len(log))
    if rerun_from == len(log):
        raise VerifyError(f"ledger {db}: no {name} decisions in [{_when(start_ms, 'start')}, {_when(end_ms, 'end')}); "
                          f"it has {held.decisions:,} from {format_ms(held.first_ms)} to {format_ms(held.last_ms)}")
    env_settings, risk, source = sessions.money_settings(log, name)
    frame, start_index = _candles(conn, db, held, log, env_settings.lookback_window)
    strategies = LedgerStrategies(db, models, sessions, env_settings.lookback_window)
    witness = ObservationWitness(ledger_schedule(log, rerun_from, strategies))
    result = run_backtest(witness, make_env(frame, _without_episode_end(env_settings)), start_index, risk)
    turns = tuple((label, len(list(group))) for label, group in groupby(decider_label(d) for d in log[rerun_from:]))
    return SymbolVerdict(held.symbol, held.interval, len(log), rerun_from, log[0].open_time_ms, log[-1].open_time_ms,
                         log[rerun_from].open_time_ms, turns, source,
                         first_divergence(log, rerun_from, result, witness.hashes))


def _without_episode_end(env: EnvSettings) -> EnvSettings:
    """The daemon never ends an episode: switch off the env's blow-up end (``max_loss`` 1:
    only a negative equity ends the run)."""
    return env.model_copy(update={"reward": env.reward.model_copy(update={"max_loss": 1.0})})


def _candles(conn: sqlite3.Connection, db: Path, held: DecidedSymbol, log: Sequence[LoggedDecision],
             lookback_window: int) -> tuple[pd.DataFrame, int]:
    """Every stored candle from the series' first through the candle after the last logged
    decision (a flat copy of the last candle when none is stored yet), and the index of
    the first decision."""
    name = f"{held.symbol} {held.interval}"
    last_ms = log[-1].open_time_ms
    (next_ms,) = conn.execute("SELECT min(open_time_ms) FROM candles WHERE symbol = ? AND interval = ? "
                              "AND open_time_ms > ?", (held.symbol, held.interval, last_ms)).fetchone()
    try:
        frame = read_candles(conn, held.symbol, held.interval, end_ms=last_ms if next_ms is None else next_ms)
    except CandleDataError as exc:
        raise VerifyError(f"ledger {db}: {name} candles: {exc.problem}; verify replays the candles the daemon "
                          "decided on, as they are") from None
    if next_ms is None:
        frame = _with_successor(frame, funding_settlements(conn, held.symbol))
    times = frame["open_time_ms"].to_numpy()
    start_index = int(np.searchsorted(times, log[0].open_time_ms))
    needed = warmup_prefix(lookback_window)
    if start_index < needed:
        raise VerifyError(f"ledger {db}: the first {name} decision ({format_ms(log[0].open_time_ms)}) has "
                          f"{start_index} stored candles before it; lookback_window {lookback_window} needs "
                          f"{needed}")
    return frame, start_index


def _with_successor(frame: pd.DataFrame, settlements: list[tuple[int, float]]) -> pd.DataFrame:
    """``frame`` and a flat candle after its last; on a perpetual that candle's funding_rate
    row carries the funding settled at the last candle's close, which its decision paid."""
    last = frame.iloc[-1]
    last_ms = int(last["open_time_ms"])
    open_ms = last_ms + infer_interval_ms(frame["open_time_ms"].to_numpy())
    close = float(last["close"])
    due = due_between(last_ms, open_ms, settlements)
    successor = pd.DataFrame({"open_time_ms": [open_ms], "timestamp": [pd.Timestamp(open_ms, unit="ms")],
                              "open": [close], "high": [close], "low": [close], "close": [close], "volume": [0.0],
                              FUNDING_RATE_COLUMN: [0.0 if due is None else due.rate]})
    return pd.concat([frame, successor[frame.columns]], ignore_index=True)


def _when(ms: int | None, edge: str) -> str:
    return edge if ms is None else format_ms(ms)


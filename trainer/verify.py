"""``shadow verify``: prove on a live ledger that the daemon decided what the backtest decides.

For each symbol, the candles the ledger stored go through the ordinary backtest
(:func:`trainer.evaluation.backtest.run_backtest` on the training env, with the risk guard) from the
ledger's first decision, with the settings the daemon sessions recorded
(``runs.settings``) and the very strategies that took each decision, read from the ledger:

- a decision with a registry ``model_version`` (``v0002``) was taken by that registry
  model, loaded only after its sha256 and metadata pass
  (:func:`trainer.models.store.load_registry_strategy`);
- a ``sha256:…`` version was a model file given as ``[daemon] strategy = "ppo:PATH"``: the
  session's recorded spec names the file, whose sha256 must still match;
- no version: a baseline (or the cold-start fallback), rebuilt from the canonical spec the
  decision recorded as its strategy.

A :class:`strategies.schedule.StrategySchedule` hands each candle to the strategy the
ledger says decided it, hot-swaps and rollbacks included, so there is no second decision
path. Decisions before ``--from`` are replayed with their recorded actions instead
(:class:`strategies.schedule.RecordedActions`): the models that took them may be gone,
and the account the re-run starts from at ``--from`` is then the ledger's own.

Every decision is compared, in this order: the observation (``obs_hash``), the risk events,
the action, every fill (and the trade a closing fill finished) and the equity after the
fills. The first difference is the verdict's :class:`Divergence`.

The ledger's last decided candle has no successor to step the env onto; verify lends it
a flat copy of that candle, on which nothing compared depends. The env's training end
(blow-up below ``max_loss``) is off: the daemon has no episodes.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import ValidationError

from config.errors import UserError
from config.settings import DaemonSettings, EnvSettings, RiskSettings, Settings
from env.candles import CandleDataError, format_ms, infer_interval_ms
from env.features import warmup_prefix
from env.portfolio import Fill
from env.risk import RiskEvent
from env.types import Action, Observation
from state.decision_log import DecidedSymbol, LoggedDecision, decided_symbols, read_decision_log, run_settings, snapshot
from state.readers import list_models, read_candles
from state.records import ModelEntry, observation_hash
from strategies.base import ActionArray, Decider, IndexArray, MarketContext, ObservationBatch, Strategy
from strategies.schedule import RecordedActions, StrategySchedule
from strategies.specs import build_strategy
from trainer.evaluation.backtest import BacktestResult, make_env, run_backtest
from trainer.models.store import FILE_VERSION_PREFIX, file_version, load_registry_strategy

COMPARED = "actions, obs_hash, fills, equity"
"""What agreeing means, as the report says it (risk events are compared too)."""

_UNTRADED_ENV_FIELDS = frozenset({"reward", "reward_scaling"})
"""``[env]`` settings that shape the training reward only: a session may change them freely."""


class VerifyError(UserError):
    """A ledger that cannot be replayed as asked; the message names the ledger and the fix."""


@dataclass(frozen=True, slots=True)
class Divergence:
    """The first place where the ledger and the backtest differ.

    Args:
        open_time_ms: the decision's candle.
        field: what differs (``obs_hash``, ``action``, ``fills[0].price``, ``equity``...).
        live / backtest: the two values, as text that shows every bit (floats as ``repr``).
        decided_by: who took the live decision (``ppo v0002``, or ``recorded`` before ``--from``).
    """

    open_time_ms: int
    field: str
    live: str
    backtest: str
    decided_by: str


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
        VerifyError: an unknown symbol, no decisions in the range, settings that changed
            between sessions, a strategy or model that cannot be rebuilt, a gap in the
            candles. Model files that fail verification raise their own ``UserError``.
    """
    with snapshot(conn):
        held = decided_symbols(conn)
        if not held:
            raise VerifyError(f"ledger {db}: no decisions yet; nothing to verify")
        chosen = [s for s in held if symbol in (None, s.symbol)]
        if not chosen:
            names = ", ".join(f"{s.symbol} ({s.decisions:,} decisions)" for s in held)
            raise VerifyError(f"ledger {db}: no decisions for {symbol}; it has {names}")
        sessions = _Sessions(db, run_settings(conn), configured)
        models = {m.version: m for m in list_models(conn)}
        return [_verify_symbol(conn, db, s, sessions, models, start_ms, end_ms) for s in chosen]


def _verify_symbol(conn: sqlite3.Connection, db: Path, held: DecidedSymbol, sessions: _Sessions,
                   models: dict[str, ModelEntry], start_ms: int | None, end_ms: int | None) -> SymbolVerdict:
    name = f"{held.symbol} {held.interval}"
    log = read_decision_log(conn, held.symbol, end_ms=None if end_ms is None else end_ms - 1)
    rerun_from = next((i for i, d in enumerate(log) if start_ms is None or d.open_time_ms >= start_ms), len(log))
    if rerun_from == len(log):
        raise VerifyError(f"ledger {db}: no {name} decisions in [{_when(start_ms, 'start')}, {_when(end_ms, 'end')}); "
                          f"it has {held.decisions:,} from {format_ms(held.first_ms)} to {format_ms(held.last_ms)}")
    env_settings, risk, source = sessions.money_settings(log, name)
    frame, start_index = _candles(conn, db, held, log, env_settings.lookback_window)
    deciders = _Deciders(db, models, sessions, env_settings.lookback_window)
    witness = _Witness(_schedule(log, rerun_from, deciders))
    result = run_backtest(witness, make_env(frame, _without_episode_end(env_settings)), start_index, risk)
    turns = tuple((label, len(list(group))) for label, group in groupby(_decider_label(d) for d in log[rerun_from:]))
    return SymbolVerdict(held.symbol, held.interval, len(log), rerun_from, log[0].open_time_ms, log[-1].open_time_ms,
                         log[rerun_from].open_time_ms, turns, source,
                         _first_divergence(log, rerun_from, result, witness.hashes))


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True, slots=True)
class _SessionSettings:
    env: EnvSettings
    risk: RiskSettings
    daemon: DaemonSettings
    recorded: bool


class _Sessions:
    """The settings each daemon session ran with: recorded, or the configured ones."""

    def __init__(self, db: Path, recorded: dict[int, str | None], configured: Settings) -> None:
        self._db = db
        self._recorded = recorded
        self._configured = _SessionSettings(configured.env, configured.risk, configured.daemon, recorded=False)
        self._parsed: dict[int | None, _SessionSettings] = {}

    def of(self, run_id: int | None) -> _SessionSettings:
        if run_id not in self._parsed:
            text = None if run_id is None else self._recorded.get(run_id)
            self._parsed[run_id] = self._configured if text is None else self._parse(run_id, text)
        return self._parsed[run_id]

    def _parse(self, run_id: int | None, text: str) -> _SessionSettings:
        try:
            values = json.loads(text)
            return _SessionSettings(EnvSettings.model_validate(values["env"]),
                                    RiskSettings.model_validate(values["risk"]),
                                    DaemonSettings.model_validate(values["daemon"]), recorded=True)
        except (ValueError, KeyError, TypeError) as exc:
            problem = _first_line(exc) if isinstance(exc, ValidationError) else f"{type(exc).__name__}: {exc}"
            raise VerifyError(f"ledger {self._db}: the settings recorded by run {run_id} do not load in this "
                              f"Shadow ({problem})") from None

    def money_settings(self, log: Sequence[LoggedDecision], name: str) -> tuple[EnvSettings, RiskSettings, str]:
        """The ``[env]`` and ``[risk]`` settings every session of ``log`` traded with (one
        account, so they must agree), and where they came from."""
        runs = sorted({d.run_id for d in log}, key=lambda r: -1 if r is None else r)
        first = self.of(runs[0])
        for run in runs[1:]:
            other = self.of(run)
            changed = _changed_field(first, other)
            if changed:
                raise VerifyError(
                    f"ledger {self._db}: {name} was traded by run {runs[0]} and run {run} with different settings "
                    f"({changed}); verify replays one account with one set of [env] and [risk] settings")
        recorded = {self.of(r).recorded for r in runs}
        source = ("recorded by the daemon" if recorded == {True} else
                  "configured (the ledger's sessions recorded none: run it with the daemon's --config)"
                  if recorded == {False} else "recorded by the daemon, configured for sessions that recorded none")
        return first.env, first.risk, source


def _changed_field(a: _SessionSettings, b: _SessionSettings) -> str | None:
    for section, (x, y) in {"env": (a.env, b.env), "risk": (a.risk, b.risk)}.items():
        for key in type(x).model_fields:
            if section == "env" and key in _UNTRADED_ENV_FIELDS:
                continue
            if getattr(x, key) != getattr(y, key):
                return f"{section}.{key} {getattr(x, key)!r} vs {getattr(y, key)!r}"
    return None


def _without_episode_end(env: EnvSettings) -> EnvSettings:
    """The daemon never ends an episode: switch off the env's blow-up end (``max_loss`` 1:
    only a negative equity ends the run)."""
    return env.model_copy(update={"reward": env.reward.model_copy(update={"max_loss": 1.0})})


def _first_line(exc: ValidationError) -> str:
    error = exc.errors()[0]
    return f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"


# --------------------------------------------------------------------------- candles
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
        frame = _with_successor(frame)
    times = frame["open_time_ms"].to_numpy()
    start_index = int(np.searchsorted(times, log[0].open_time_ms))
    needed = warmup_prefix(lookback_window)
    if start_index < needed:
        raise VerifyError(f"ledger {db}: the first {name} decision ({format_ms(log[0].open_time_ms)}) has "
                          f"{start_index} stored candles before it; lookback_window {lookback_window} needs "
                          f"{needed}")
    return frame, start_index


def _with_successor(frame: pd.DataFrame) -> pd.DataFrame:
    last = frame.iloc[-1]
    open_ms = int(last["open_time_ms"]) + infer_interval_ms(frame["open_time_ms"].to_numpy())
    close = float(last["close"])
    successor = pd.DataFrame({"open_time_ms": [open_ms], "timestamp": [pd.Timestamp(open_ms, unit="ms")],
                              "open": [close], "high": [close], "low": [close], "close": [close], "volume": [0.0]})
    return pd.concat([frame, successor[frame.columns]], ignore_index=True)


# --------------------------------------------------------------------------- strategies
class _Deciders:
    """The strategy behind each logged decision, built once per (strategy, model version)."""

    def __init__(self, db: Path, models: dict[str, ModelEntry], sessions: _Sessions, lookback_window: int) -> None:
        self._db = db
        self._models = models
        self._sessions = sessions
        self._lookback = lookback_window
        self._built: dict[tuple[str | None, str | None], Strategy] = {}

    def of(self, decision: LoggedDecision) -> Strategy:
        key = (decision.strategy, decision.model_version)
        if key not in self._built:
            self._built[key] = self._build(decision)
        return self._built[key]

    def _build(self, d: LoggedDecision) -> Strategy:
        where = f"ledger {self._db}: the decision at {format_ms(d.open_time_ms)} ({_decider_label(d)})"
        version = d.model_version
        if version is None:
            if d.strategy is None:
                raise VerifyError(f"{where} records no strategy; it cannot be re-run (verify --from a later time)")
            return build_strategy(d.strategy, lookback_window=self._lookback)
        if version.startswith(FILE_VERSION_PREFIX):
            return self._model_file(d, version, where)
        entry = self._models.get(version)
        if entry is None:
            raise VerifyError(f"{where}: the registry has no model {version}")
        return load_registry_strategy(entry, self._lookback)

    def _model_file(self, d: LoggedDecision, version: str, where: str) -> Strategy:
        spec = self._sessions.of(d.run_id).daemon.strategy
        if not spec.startswith("ppo:"):
            raise VerifyError(f"{where}: a model file the session's [daemon] strategy {spec!r} does not name; "
                              "pass the daemon's --config")
        path = Path(spec.split(":", 1)[1])
        if not path.is_file():
            raise VerifyError(f"{where}: model file {path} is missing")
        found = file_version(path)
        if found != version:
            raise VerifyError(f"{where}: model file {path} is now {found}; refusing to load a file that changed "
                              "after it traded")
        return build_strategy(spec, lookback_window=self._lookback)


def _schedule(log: Sequence[LoggedDecision], rerun_from: int, deciders: _Deciders) -> StrategySchedule:
    """Recorded actions up to ``rerun_from``, then each decision's own strategy, turn by turn."""
    strategies: list[Strategy] = []
    starts: list[int] = []
    if rerun_from:
        replayed = log[:rerun_from]
        strategies.append(RecordedActions([d.open_time_ms for d in replayed], [d.action for d in replayed]))
        starts.append(replayed[0].open_time_ms)
    for _, group in groupby(log[rerun_from:], key=lambda d: (d.strategy, d.model_version)):
        first = next(group)
        strategies.append(deciders.of(first))
        starts.append(first.open_time_ms)
    return StrategySchedule(strategies, starts)


class _Witness:
    """A strategy's stand-in that keeps the hash of every observation it is shown (the
    backtest keeps no observations), by candle open time."""

    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy
        self.hashes: dict[int, str] = {}

    @property
    def name(self) -> str:
        return self.strategy.name

    @property
    def history(self) -> int:
        return self.strategy.history

    def act(self, obs: Observation, context: MarketContext) -> Action:
        self.hashes[int(context.open_time_ms[-1])] = observation_hash(obs)
        return self.strategy.act(obs, context)

    def act_batch(self, obs: ObservationBatch, context: MarketContext, steps: IndexArray) -> ActionArray:
        for row, t in zip(obs, steps, strict=True):
            self.hashes[int(context.open_time_ms[t])] = observation_hash(row)
        return self.strategy.act_batch(obs, context, steps)

    def prepare(self, context: MarketContext) -> Decider:
        decide = self.strategy.prepare(context)
        times = context.open_time_ms.tolist()
        hashes = self.hashes

        def witness(t: int, obs: Observation) -> int:
            hashes[times[t]] = observation_hash(obs)
            return decide(t, obs)

        return witness


# --------------------------------------------------------------------------- comparison
def _first_divergence(log: Sequence[LoggedDecision], rerun_from: int, result: BacktestResult,
                      hashes: dict[int, str]) -> Divergence | None:
    """The first decision where the ledger and the backtest differ, walking both in candle order."""
    fills: defaultdict[int, list[Fill]] = defaultdict(list)
    for fill in result.fills:
        fills[fill.time_ms].append(fill)
    events: defaultdict[int, list[RiskEvent]] = defaultdict(list)
    for event in result.risk_events:
        events[event.time_ms].append(event)
    steps = result.times_ms[:-1].tolist()  # the backtest's decision candles
    for k, live in enumerate(log):
        by = "recorded action" if k < rerun_from else _decider_label(live)
        if k == len(steps):  # only a negative equity ends the run early
            return Divergence(live.open_time_ms, "decision", Action(live.action).name,
                              "none (the backtest ended: equity below zero)", by)
        t = steps[k]
        if t != live.open_time_ms:  # the candles are contiguous, so the ledger skipped candle t
            return Divergence(t, "decision", "none", Action(int(result.actions[k])).name, "-")
        differs = _compare(live, hashes.get(t), events[t], int(result.actions[k]), fills[t],
                           float(result.decision_equity[k]))
        if differs is not None:
            return Divergence(t, *differs, by)
    return None


def _compare(live: LoggedDecision, obs_hash: str | None, events: list[RiskEvent], action: int, fills: list[Fill],
             equity: float) -> tuple[str, str, str] | None:
    """``(field, live, backtest)`` of the first field that differs, in the order a decision
    is made: observation, risk guard, action, fills, equity."""
    if live.obs_hash != obs_hash:
        return "obs_hash", live.obs_hash, str(obs_hash)
    if list(live.risk_events) != events:
        return "risk_events", _events(live.risk_events), _events(events)
    if live.action != action:
        return "action", Action(live.action).name, Action(action).name
    if list(live.fills) != fills:
        return _fill_difference(live.fills, fills)
    if live.equity != equity:
        return "equity", repr(live.equity), repr(equity)
    return None


def _fill_difference(live: Sequence[Fill], backtest: Sequence[Fill]) -> tuple[str, str, str]:
    if len(live) != len(backtest):
        return "fills", _count(len(live), "fill"), _count(len(backtest), "fill")
    for i, (a, b) in enumerate(zip(live, backtest, strict=True)):
        for key in Fill._fields:
            x, y = getattr(a, key), getattr(b, key)
            if key == "trade" and x is not None and y is not None:
                for trade_key in x._fields:
                    if getattr(x, trade_key) != getattr(y, trade_key):
                        return f"fills[{i}].trade.{trade_key}", repr(getattr(x, trade_key)), repr(getattr(y, trade_key))
            elif x != y:
                return f"fills[{i}].{key}", repr(x), repr(y)
    raise AssertionError("unreachable: the fills differ")


def _events(events: Sequence[RiskEvent]) -> str:
    return "; ".join(f"{e.kind}: {e.detail}" for e in events) or "none"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _decider_label(d: LoggedDecision) -> str:
    return " ".join(part for part in (d.strategy or "unknown strategy", d.model_version) if part)


def _when(ms: int | None, edge: str) -> str:
    return edge if ms is None else format_ms(ms)


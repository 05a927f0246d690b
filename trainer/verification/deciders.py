"""The strategies that took a ledger's decisions, rebuilt from what each decision recorded.

A decision records its strategy label and model version (``bot.serving`` sets both):

- a registry ``model_version`` (``v0002``): that registry model, loaded only after its
  sha256 and metadata pass (:func:`trainer.models.store.load_registry_strategy`);
- a ``sha256:…`` version (:func:`trainer.models.store.file_version`): a model file given as
  the account's strategy ``ppo:PATH``; the session's spec for the account names the file,
  whose sha256 must still match;
- no version: a baseline or the cold-start fallback, rebuilt from the canonical spec the
  decision recorded as its strategy (``sma:fast=5,slow=20,short=false``).

:func:`ledger_schedule` lays them out as a :class:`strategies.schedule.StrategySchedule`:
each candle goes to the strategy that decided it, hot-swaps and rollbacks included.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from pathlib import Path

from config.errors import UserError
from env.candles import format_ms
from state.decision_log import LoggedDecision
from state.records import ModelEntry
from strategies.base import Strategy
from strategies.schedule import RecordedActions, StrategySchedule
from strategies.specs import build_strategy
from trainer.models.store import FILE_VERSION_PREFIX, file_version, load_registry_strategy
from trainer.verification.sessions import LedgerSessions

REPLAY_INSTEAD = "; --from a time after its decisions replays them from their recorded actions instead"
"""How to verify around a strategy that cannot be rebuilt (said in its error)."""


class StrategyRebuildError(UserError):
    """A logged decision whose strategy cannot be rebuilt: a model missing or changed, no
    strategy recorded, a spec this code does not know."""


def decider_label(decision: LoggedDecision) -> str:
    """Who took a decision, as the report names it: ``ppo v0002``, ``sma:fast=5,...``."""
    return " ".join(part for part in (decision.strategy or "unknown strategy", decision.model_version) if part)


class LedgerStrategies:
    """The strategy behind each logged decision of one account, built once per (strategy,
    model version).

    Args:
        db: the ledger's path, for messages.
        models: the registry's rows by version.
        sessions: the settings of each session (for a model file's path).
        lookback_window: the observation's lookback (a model built for another is refused).
        account: the account whose decisions these are.
    """

    def __init__(self, db: Path, models: dict[str, ModelEntry], sessions: LedgerSessions,
                 lookback_window: int, account: str) -> None:
        self._db = db
        self._account = account
        self._models = models
        self._sessions = sessions
        self._lookback = lookback_window
        self._built: dict[tuple[str | None, str | None], Strategy] = {}

    def of(self, decision: LoggedDecision) -> Strategy:
        """The strategy that took ``decision``.

        Raises:
            StrategyRebuildError: it cannot be rebuilt (the message names the decision).
        """
        key = (decision.strategy, decision.model_version)
        if key not in self._built:
            self._built[key] = self._build(decision)
        return self._built[key]

    def _build(self, d: LoggedDecision) -> Strategy:
        where = (f"ledger {self._db}: the decision of account {self._account} at {format_ms(d.open_time_ms)} "
                 f"({decider_label(d)})")
        try:
            return self._load(d, where)
        except StrategyRebuildError:
            raise
        except UserError as exc:  # a model file missing, changed or built for other features; a bad spec
            raise StrategyRebuildError(f"{where}: {exc}{REPLAY_INSTEAD}") from None

    def _load(self, d: LoggedDecision, where: str) -> Strategy:
        version = d.model_version
        if version is None:
            if d.strategy is None:
                raise StrategyRebuildError(f"{where} records no strategy{REPLAY_INSTEAD}")
            return build_strategy(d.strategy, lookback_window=self._lookback)
        if version.startswith(FILE_VERSION_PREFIX):
            return self._model_file(d, version, where)
        entry = self._models.get(version)
        if entry is None:
            raise StrategyRebuildError(f"{where}: the registry has no model {version}{REPLAY_INSTEAD}")
        return load_registry_strategy(entry, self._lookback)

    def _model_file(self, d: LoggedDecision, version: str, where: str) -> Strategy:
        spec = self._sessions.account(d.run_id, self._account).strategy
        if not spec.startswith("ppo:"):
            raise StrategyRebuildError(f"{where}: a model file the session's strategy {spec!r} for the account does "
                                       "not name; pass the daemon's --config")
        path = Path(spec.split(":", 1)[1])
        if not path.is_file():
            raise StrategyRebuildError(f"{where}: model file {path} is missing{REPLAY_INSTEAD}")
        found = file_version(path)
        if found != version:
            raise StrategyRebuildError(f"{where}: model file {path} is now {found}; refusing to load a file that "
                                       f"changed after it traded{REPLAY_INSTEAD}")
        return build_strategy(spec, lookback_window=self._lookback)


def ledger_schedule(log: Sequence[LoggedDecision], rerun_from: int, strategies: LedgerStrategies) -> StrategySchedule:
    """The recorded actions of ``log[:rerun_from]``, then each later decision's own strategy,
    turn by turn (a turn: consecutive decisions of one strategy and model version)."""
    turns: list[Strategy] = []
    starts: list[int] = []
    if rerun_from:
        replayed = log[:rerun_from]
        turns.append(RecordedActions([d.open_time_ms for d in replayed], [d.action for d in replayed]))
        starts.append(replayed[0].open_time_ms)
    for _, group in groupby(log[rerun_from:], key=lambda d: (d.strategy, d.model_version)):
        first = next(group)
        turns.append(strategies.of(first))
        starts.append(first.open_time_ms)
    return StrategySchedule(turns, starts)

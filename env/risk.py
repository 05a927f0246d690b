"""Risk controls that override a strategy: a max-drawdown stop and a daily loss limit.

They sit between the strategy and the fill inside the money step
(:class:`env.execution.Account`), which the live engine and the backtester share, so a
backtest with the same settings makes the same decisions.

- **Max drawdown stop**: once equity falls ``max_drawdown`` below its peak, the account is
  closed and no new position is opened again (a latched stop: a person should look).
- **Daily loss limit**: once equity falls ``daily_loss_limit`` below the equity at the start
  of the UTC day, the account is closed and no position is opened until the next UTC day.

While a guard is active every action becomes CLOSE while a position is open (go flat at
once, whatever the strategy says) and HOLD once flat.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from config.settings import RiskSettings
from env.portfolio import Portfolio
from env.types import Action, Side

DAY_MS = 86_400_000


class RiskEventKind(StrEnum):
    """What a :class:`RiskEvent` reports; the value is what ``risk_events.kind`` stores."""

    MAX_DRAWDOWN = "max_drawdown"
    """The drawdown stop tripped: flat, and no new position until a person looks."""
    DAILY_LOSS = "daily_loss"
    """The daily loss limit tripped: flat until the next UTC day."""
    DAILY_RESET = "daily_reset"
    """A new UTC day released the daily loss limit."""


class RiskEvent(NamedTuple):
    """A guard tripping (or a new day releasing the daily limit), for the ledger."""

    time_ms: int
    kind: RiskEventKind
    detail: str


@dataclass(slots=True)
class RiskState:
    """What the guard remembers between candles (persisted by the ledger)."""

    day: int = -1  # UTC day number of day_start_equity
    day_start_equity: float = 0.0
    drawdown_stopped: bool = False
    daily_stopped: bool = False


class RiskGuard:
    """Applies the two limits to each decision.

    Args:
        max_drawdown: fraction of peak equity (0.25 = 25%); ``None`` disables the stop.
        daily_loss_limit: fraction of the day's opening equity; ``None`` disables it.
    """

    def __init__(self, max_drawdown: float | None, daily_loss_limit: float | None,
                 state: RiskState | None = None) -> None:
        self.max_drawdown = max_drawdown
        self.daily_loss_limit = daily_loss_limit
        self.state = state or RiskState()

    @classmethod
    def from_settings(cls, risk: RiskSettings, state: RiskState | None = None) -> RiskGuard:
        """From the ``[risk]`` settings, where 0 switches a limit off."""
        return cls(risk.max_drawdown or None, risk.daily_loss_limit or None, state)

    @property
    def blocking(self) -> bool:
        return self.state.drawdown_stopped or self.state.daily_stopped

    def check(self, action: int, portfolio: Portfolio, time_ms: int) -> tuple[int, list[RiskEvent]]:
        """The action to carry out at candle ``time_ms`` (account marked at its close),
        and the events raised by this candle."""
        state = self.state
        events: list[RiskEvent] = []
        equity = portfolio.equity
        day = time_ms // DAY_MS
        if day != state.day:
            if state.daily_stopped:
                events.append(RiskEvent(time_ms, RiskEventKind.DAILY_RESET, f"new UTC day, equity {equity:.8g}"))
            state.day, state.day_start_equity, state.daily_stopped = day, equity, False
        if self.max_drawdown is not None and not state.drawdown_stopped and portfolio.drawdown >= self.max_drawdown:
            state.drawdown_stopped = True
            events.append(RiskEvent(time_ms, RiskEventKind.MAX_DRAWDOWN,
                                    f"drawdown {portfolio.drawdown:.2%} >= limit {self.max_drawdown:.2%}; "
                                    "flat and no new positions"))
        if (self.daily_loss_limit is not None and not state.daily_stopped and state.day_start_equity > 0
                and equity <= state.day_start_equity * (1.0 - self.daily_loss_limit)):
            state.daily_stopped = True
            events.append(RiskEvent(time_ms, RiskEventKind.DAILY_LOSS,
                                    f"equity {equity:.8g} is {1 - equity / state.day_start_equity:.2%} below the "
                                    f"day's start {state.day_start_equity:.8g} (limit {self.daily_loss_limit:.2%}); "
                                    "flat until the next UTC day"))
        if not self.blocking:
            return action, events
        return (Action.CLOSE if portfolio.side != Side.FLAT else Action.HOLD), events

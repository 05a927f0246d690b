"""The account: one position in one instrument, filled at candle closes.

This is the single fill and PnL model of Shadow. The env, the backtester and the paper
ledger all drive this class; the ledger only stores what it returns, so a paper run and
a backtest on the same candles agree to the last bit.

Model (a linear, cash-settled contract such as a USDT perpetual; also right for spot
long-only use):

- **Sizing.** Opening a position commits ``max_position_size x equity`` of notional at
  the fill price: ``qty = notional / fill_price``. 1.0 means fully invested, 2.0 is 2x
  leverage. Nothing opens when equity is not positive.
- **Fill price.** The candle close moved against the trader by ``slippage_bps``:
  buys fill at ``close * (1 + bps/1e4)``, sells at ``close * (1 - bps/1e4)``.
- **Fees.** ``commission x qty x fill_price`` on every open and every close, taken
  from cash at once.
- **Funding** (perpetuals, :mod:`env.funding`). At each funding time an open position pays
  ``side x qty x price x rate`` from cash (a negative amount is received), ``price`` being
  the close of the candle that ends at the funding time.
- **PnL.** Unrealised ``= side x qty x (price - entry_price)``; closing moves it into
  cash. ``equity = cash + unrealised``; ``total_pnl = equity - initial_balance``
  ``= realized_pnl + unrealized_pnl - fees_paid - funding_paid`` (``realized_pnl`` is
  gross of fees and funding).
- **Trades.** A round trip (open -> close) is one trade; its net PnL is gross PnL minus
  both fees minus the funding paid while it was open, and it is a win when that is
  positive. Drawdown is ``1 - equity / peak_equity``, updated at every mark and every fill.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

from config.settings import EnvSettings
from env.funding import FundingPayment
from env.types import Action, Side


@dataclass(frozen=True, slots=True)
class PortfolioConfig:
    """Account parameters, as in the seed's ``CryptoTradingEnv.__init__``.

    Args:
        initial_balance: starting cash in the quote currency (USDT).
        commission: fee rate per fill, 0.0004 = 0.04%.
        max_position_size: notional of a position as a multiple of equity.
        slippage_bps: adverse fill offset from the candle close, in basis points.
    """

    initial_balance: float = 100.0
    commission: float = 0.0004
    max_position_size: float = 1.0
    slippage_bps: float = 0.0

    def __post_init__(self) -> None:
        checks = {
            "initial_balance": self.initial_balance > 0,
            "commission": 0 <= self.commission < 1,
            "max_position_size": self.max_position_size > 0,
            "slippage_bps": 0 <= self.slippage_bps < 10_000,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"PortfolioConfig.{name}: invalid value {getattr(self, name)!r}")

    @classmethod
    def from_settings(cls, env: EnvSettings) -> PortfolioConfig:
        """The account of the ``[env]`` settings."""
        return cls(env.initial_balance, env.commission, env.max_position_size, env.slippage_bps)


_TARGET_SIDE: dict[int, int] = {Action.BUY: Side.LONG, Action.SELL: Side.SHORT, Action.CLOSE: Side.FLAT}


class ClosedTrade(NamedTuple):
    """One round trip, as the trade log shows it."""

    side: int  # Side.LONG or Side.SHORT
    qty: float
    entry_time_ms: int
    exit_time_ms: int
    entry_price: float
    exit_price: float
    gross_pnl: float
    fees: float  # entry fee + exit fee
    net_pnl: float  # gross_pnl - fees - funding
    funding: float = 0.0  # funding paid while open (negative: received)


class Fill(NamedTuple):
    """One simulated execution. ``side`` is +1 for a buy, -1 for a sell."""

    time_ms: int
    side: int
    qty: float
    price: float  # after slippage
    market_price: float  # the candle close it was filled against
    fee: float
    slippage_cost: float  # qty x |price - market_price|
    opens: bool  # True for an opening fill, False for a closing one
    trade: ClosedTrade | None  # the finished round trip, on closing fills


@dataclass(slots=True)
class PortfolioState:
    """Everything needed to restore a :class:`Portfolio` (the ledger persists this)."""

    cash: float
    side: int = 0
    qty: float = 0.0
    entry_price: float = 0.0
    entry_time_ms: int = 0
    entry_fee: float = 0.0
    last_price: float = 0.0
    fees_paid: float = 0.0
    realized_pnl: float = 0.0
    n_trades: int = 0
    n_wins: int = 0
    peak_equity: float = 0.0
    max_drawdown: float = 0.0
    funding_paid: float = 0.0
    """Funding paid in total, net of funding received."""
    position_funding: float = 0.0
    """Funding paid (net) by the open position so far; 0 when flat."""


class Portfolio:
    """A paper account. Call :meth:`mark` with each candle close, :meth:`apply` with
    each decision; read equity, PnL and win rate here, nowhere else.

    ``unrealized_pnl`` and ``equity`` are kept up to date by every method that moves the
    price, the cash or the position (the env reads them several times per step, so they
    are plain attributes, not properties); never assign the state fields directly, use
    :meth:`restore`.
    """

    __slots__ = ("_slip", "cash", "config", "entry_fee", "entry_price", "entry_time_ms", "equity", "fees_paid",
                 "funding_paid", "last_price", "max_drawdown", "n_trades", "n_wins", "peak_equity", "position_funding",
                 "qty", "realized_pnl", "side", "unrealized_pnl")

    config: PortfolioConfig
    cash: float
    side: int
    qty: float
    entry_price: float
    entry_time_ms: int
    entry_fee: float
    last_price: float
    fees_paid: float
    realized_pnl: float
    n_trades: int
    n_wins: int
    peak_equity: float
    max_drawdown: float
    funding_paid: float
    position_funding: float
    unrealized_pnl: float
    """``side x qty x (last_price - entry_price)``; 0 when flat."""
    equity: float
    """``cash + unrealized_pnl``."""

    def __init__(self, config: PortfolioConfig | None = None) -> None:
        self.config = config or PortfolioConfig()
        self._slip = self.config.slippage_bps / 10_000.0
        self.restore(PortfolioState(cash=self.config.initial_balance, peak_equity=self.config.initial_balance))

    # ----------------------------------------------------------------- state
    def snapshot(self) -> PortfolioState:
        return PortfolioState(
            cash=self.cash, side=self.side, qty=self.qty, entry_price=self.entry_price,
            entry_time_ms=self.entry_time_ms, entry_fee=self.entry_fee, last_price=self.last_price,
            fees_paid=self.fees_paid, realized_pnl=self.realized_pnl, n_trades=self.n_trades,
            n_wins=self.n_wins, peak_equity=self.peak_equity, max_drawdown=self.max_drawdown,
            funding_paid=self.funding_paid, position_funding=self.position_funding,
        )

    def restore(self, state: PortfolioState) -> None:
        for name, value in asdict(state).items():
            setattr(self, name, value)
        self._revalue()

    # ------------------------------------------------------------ read-outs
    @property
    def total_pnl(self) -> float:
        """``equity - initial_balance`` ``= realized_pnl + unrealized_pnl - fees_paid - funding_paid``."""
        return self.equity - self.config.initial_balance

    @property
    def drawdown(self) -> float:
        return 1.0 - self.equity / self.peak_equity if self.peak_equity > 0 else 0.0

    @property
    def win_rate(self) -> float:
        """Share of closed round trips that won; 0.0 before the first one (see :func:`win_rate`)."""
        return win_rate(self.n_wins, self.n_trades)

    # -------------------------------------------------------------- updates
    def mark(self, price: float) -> float:
        """Mark to market at ``price`` (a candle close); returns equity."""
        self.last_price = price
        self._revalue()
        return self._track_drawdown()

    def apply_funding(self, rate: float, price: float, time_ms: int) -> FundingPayment | None:
        """Settle funding at ``rate`` on the open position valued at ``price``: Bybit's
        ``position value x funding rate``, paid by longs when the rate is positive.

        The money step (:meth:`env.execution.Account.mark`) calls it before the mark of the
        candle that ends at the funding time ``time_ms``, with that candle's close.

        Returns:
            The payment (``amount`` > 0 paid, < 0 received), or ``None`` when flat.
        """
        side = self.side
        if not side:
            return None
        amount = side * self.qty * price * rate
        self.cash -= amount
        self.funding_paid += amount
        self.position_funding += amount
        self._revalue()
        return FundingPayment(time_ms, rate, price, side, self.qty, amount)

    def apply(self, action: int, price: float, time_ms: int = 0) -> tuple[Fill, ...]:
        """Carry out ``action`` at market price ``price`` (see :class:`env.types.Action`).

        Moves ``last_price`` to ``price`` first (without a drawdown update: call
        :meth:`mark` for that; the money step, :class:`env.execution.Account`, always
        does). Returns the fills, in order (none for a no-op, two for a reversal: the
        close, then the open).
        """
        if price != self.last_price:
            self.last_price = price
            self._revalue()
        side = self.side
        if action == Action.HOLD:
            return ()
        target = _TARGET_SIDE.get(action)
        if target is None:
            raise ValueError(f"invalid action {action!r}: expected 0 HOLD, 1 BUY, 2 SELL or 3 CLOSE")
        if target == side:
            return ()
        fills: tuple[Fill, ...] = ()
        if side != Side.FLAT:
            fills += (self._close(price, time_ms),)
        if target != Side.FLAT:
            opened = self._open(target, price, time_ms)
            if opened is not None:
                fills += (opened,)
        self._revalue()
        self._track_drawdown()
        return fills

    def _open(self, side: int, price: float, time_ms: int) -> Fill | None:
        equity = self.cash
        if equity <= 0:
            return None
        fill_price = price * (1.0 + side * self._slip)
        qty = self.config.max_position_size * equity / fill_price
        fee = self.config.commission * qty * fill_price
        self.cash -= fee
        self.fees_paid += fee
        self.side, self.qty, self.entry_price, self.entry_time_ms, self.entry_fee = side, qty, fill_price, time_ms, fee
        return Fill(time_ms, side, qty, fill_price, price, fee, qty * abs(fill_price - price), True, None)

    def _close(self, price: float, time_ms: int) -> Fill:
        side, qty = self.side, self.qty
        fill_price = price * (1.0 - side * self._slip)
        gross = side * qty * (fill_price - self.entry_price)
        fee = self.config.commission * qty * fill_price
        self.cash += gross - fee
        self.fees_paid += fee
        self.realized_pnl += gross
        trade_fees = self.entry_fee + fee
        funding = self.position_funding
        net = gross - trade_fees - funding
        self.n_trades += 1
        self.n_wins += net > 0
        trade = ClosedTrade(side, qty, self.entry_time_ms, time_ms, self.entry_price, fill_price, gross, trade_fees,
                            net, funding)
        self.side, self.qty, self.entry_price, self.entry_time_ms, self.entry_fee = 0, 0.0, 0.0, 0, 0.0
        self.position_funding = 0.0
        return Fill(time_ms, -side, qty, fill_price, price, fee, qty * abs(fill_price - price), False, trade)

    def _revalue(self) -> None:
        unrealized = self.side * self.qty * (self.last_price - self.entry_price) if self.side else 0.0
        self.unrealized_pnl = unrealized
        self.equity = self.cash + unrealized

    def _track_drawdown(self) -> float:
        equity = self.equity
        if equity > self.peak_equity:
            self.peak_equity = equity
        elif self.peak_equity > 0:
            dd = 1.0 - equity / self.peak_equity
            if dd > self.max_drawdown:
                self.max_drawdown = dd
        return equity


def win_rate(n_wins: int, n_trades: int) -> float:
    """Share of closed round trips whose PnL net of both fees (and funding) is positive; **0.0 when there
    are no trades**, everywhere (the env's ``info``, backtest metrics, ``shadow status``, the
    demo, the ledger's ``v_model_performance``).

    Why 0.0 and not "undefined": the seed's env contract hands ``info['win_rate']`` to code
    that multiplies it (the seed's backtest snippet), and gymnasium's ``check_env`` compares
    infos with ``==``, so neither ``None`` nor NaN can stand in the env; and 0/0 = 0.0 is the
    rule :mod:`trainer.evaluation.metrics` already applies to every other ratio without risk (a flat
    run's Sharpe is 0.0). A win rate is always shown beside its trade count, so "0 trades,
    0%" cannot be read as "lost every trade".
    """
    return n_wins / n_trades if n_trades else 0.0

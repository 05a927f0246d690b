"""The fill/PnL model against hand-computed cases."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from env.portfolio import Portfolio, PortfolioConfig
from env.types import Action, Side

approx = pytest.approx


def account(commission: float = 0.001, slippage_bps: float = 0.0, size: float = 1.0) -> Portfolio:
    return Portfolio(PortfolioConfig(initial_balance=100.0, commission=commission, max_position_size=size,
                                     slippage_bps=slippage_bps))


def test_long_win() -> None:
    p = account()
    (fill,) = p.apply(Action.BUY, 100.0, time_ms=1)
    assert (fill.side, fill.qty, fill.price, fill.fee, fill.opens) == (1, 1.0, 100.0, approx(0.1), True)
    assert p.cash == approx(99.9) and p.side == Side.LONG
    p.mark(110.0)
    assert p.unrealized_pnl == approx(10.0) and p.equity == approx(109.9)
    (close,) = p.apply(Action.CLOSE, 110.0, time_ms=2)
    assert close.side == -1 and close.fee == approx(0.11)
    trade = close.trade
    assert trade is not None
    assert (trade.side, trade.entry_time_ms, trade.exit_time_ms) == (1, 1, 2)
    assert trade.gross_pnl == approx(10.0) and trade.fees == approx(0.21) and trade.net_pnl == approx(9.79)
    assert p.cash == approx(109.79) and p.equity == approx(109.79) and p.side == Side.FLAT
    assert p.total_pnl == approx(9.79) and p.realized_pnl == approx(10.0) and p.fees_paid == approx(0.21)
    assert (p.n_trades, p.win_rate) == (1, 1.0)


def test_short_win() -> None:
    p = account()
    p.apply(Action.SELL, 100.0)
    assert p.side == Side.SHORT and p.qty == 1.0
    p.mark(90.0)
    assert p.unrealized_pnl == approx(10.0)
    (close,) = p.apply(Action.CLOSE, 90.0)
    assert close.side == 1  # buying back
    assert close.trade.net_pnl == approx(10.0 - 0.1 - 0.09)
    assert p.cash == approx(109.81)


def test_long_loss_counts_as_loss() -> None:
    p = account()
    p.apply(Action.BUY, 100.0)
    p.apply(Action.CLOSE, 100.1)  # gross +0.1 but fees 0.2001: a net loss
    assert p.n_trades == 1 and p.win_rate == 0.0
    assert p.cash == approx(100 - 0.1 + 0.1 - 0.1001)


def test_reversal_closes_then_opens_with_the_new_equity() -> None:
    p = account()
    p.apply(Action.BUY, 100.0)
    close, open_ = p.apply(Action.SELL, 110.0, time_ms=5)
    assert close.trade.net_pnl == approx(9.79) and not close.opens
    assert open_.opens and open_.side == -1
    assert open_.qty == approx(109.79 / 110.0)
    assert open_.fee == approx(0.10979)
    assert p.side == Side.SHORT and p.cash == approx(109.79 - 0.10979)
    assert p.entry_time_ms == 5 and p.n_trades == 1


@pytest.mark.parametrize("action", [Action.CLOSE, Action.HOLD])
def test_close_or_hold_when_flat_is_a_no_op(action: Action) -> None:
    p = account()
    assert p.apply(action, 100.0) == ()
    assert p.cash == 100.0 and p.fees_paid == 0.0 and p.n_trades == 0


def test_buy_when_long_is_a_no_op() -> None:
    p = account()
    p.apply(Action.BUY, 100.0)
    before = p.snapshot()
    assert p.apply(Action.BUY, 120.0) == ()
    after = p.snapshot()
    assert (after.cash, after.qty, after.entry_price) == (before.cash, before.qty, before.entry_price)


def test_slippage_moves_fills_against_the_trader() -> None:
    p = account(commission=0.0, slippage_bps=10)
    (buy,) = p.apply(Action.BUY, 100.0)
    assert buy.price == approx(100.1) and buy.market_price == 100.0
    assert buy.slippage_cost == approx(buy.qty * 0.1)
    (sell,) = p.apply(Action.CLOSE, 100.0)
    assert sell.price == approx(99.9)
    assert p.cash == approx(100.0 + buy.qty * (99.9 - 100.1))


def test_leverage_scales_the_position() -> None:
    p = account(commission=0.0, size=2.0)
    p.apply(Action.BUY, 50.0)
    assert p.qty == approx(4.0)
    p.mark(45.0)
    assert p.equity == approx(80.0)


def test_drawdown_tracks_peak_to_trough() -> None:
    p = account(commission=0.0)
    p.apply(Action.BUY, 100.0)
    p.mark(120.0)
    p.mark(90.0)
    p.mark(110.0)
    assert p.max_drawdown == approx(1 - 90 / 120)
    assert p.drawdown == approx(1 - 110 / 120)


def test_invalid_action_is_rejected() -> None:
    with pytest.raises(ValueError, match="invalid action 7"):
        account().apply(7, 100.0)


def test_snapshot_restore_round_trip() -> None:
    p = account()
    p.apply(Action.SELL, 100.0)
    p.mark(95.0)
    q = account()
    q.restore(p.snapshot())
    assert q.snapshot() == p.snapshot() and q.equity == p.equity


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(Action)), st.floats(1.0, 1e5)), min_size=1, max_size=60))
def test_pnl_identity_holds_for_any_action_sequence(steps: list[tuple[Action, float]]) -> None:
    """equity = cash + unrealised and total_pnl = realised + unrealised - fees, whatever happens."""
    p = account(slippage_bps=3)
    for action, price in steps:
        p.mark(price)
        p.apply(action, price)
        assert p.equity == approx(p.cash + p.unrealized_pnl)
        assert p.total_pnl == approx(p.realized_pnl + p.unrealized_pnl - p.fees_paid, abs=1e-6 * max(1.0, abs(p.cash)))
        if action == Action.CLOSE:
            assert p.side == Side.FLAT


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(Action)), st.floats(1.0, 1e5), st.floats(1.0, 1e5), st.booleans()),
                min_size=1, max_size=60))
def test_equity_kept_up_to_date_is_the_formula_to_the_bit(steps: list[tuple[Action, float, float, bool]]) -> None:
    """equity and unrealized_pnl are stored, not computed on read: after any mark, fill at
    another price, or restore, they are exactly ``cash + side x qty x (price - entry)``."""
    p = account(slippage_bps=3)
    for action, mark, fill, restore in steps:
        p.mark(mark)
        p.apply(action, fill)
        if restore:
            q = account(slippage_bps=3)
            q.restore(p.snapshot())
            p = q
        unrealized = p.side * p.qty * (p.last_price - p.entry_price) if p.side else 0.0
        assert (p.unrealized_pnl, p.equity) == (unrealized, p.cash + unrealized)
        assert p.total_pnl == p.equity - 100.0 and p.win_rate == (p.n_wins / p.n_trades if p.n_trades else 0.0)

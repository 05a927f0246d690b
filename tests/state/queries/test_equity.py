"""Equity page data on the sample ledger: the account's own equity and drawdown, buy & hold
through the one fill model with the ledger's recorded costs, and several symbols summed."""

from __future__ import annotations

import sqlite3

import pandas as pd
import pytest

from env.portfolio import Portfolio, PortfolioConfig
from env.types import Action
from state.queries.equity import accounts, equity_curve, recorded_costs
from state.queries.scope import Scope


def _equity(conn: sqlite3.Connection, symbol: str) -> pd.DataFrame:
    return pd.read_sql_query("SELECT open_time_ms, equity, close, drawdown FROM equity WHERE symbol = ? "
                             "ORDER BY open_time_ms", conn, params=(symbol,))


def test_recorded_costs_are_the_rates_the_fills_were_charged(conn: sqlite3.Connection) -> None:
    costs = recorded_costs(conn, "BTCUSDT")  # state.replay trades with commission 0.00055 and 2 bps slippage
    assert costs.commission == pytest.approx(0.00055, rel=1e-9)
    assert costs.slippage_bps == pytest.approx(2.0, rel=1e-6)
    assert recorded_costs(conn, "NOSUCH").commission == 0.0


def test_one_symbol_at_its_interval_is_the_ledger_curve_and_buy_and_hold_the_portfolio(
        conn: sqlite3.Connection) -> None:
    rows = _equity(conn, "BTCUSDT")
    curve = equity_curve(conn, Scope(symbol="BTCUSDT"), 60_000, int(rows.open_time_ms.min()),
                         int(rows.open_time_ms.max()))
    assert curve.times_ms == rows.open_time_ms.tolist()
    assert curve.equity == rows.equity.tolist() and curve.drawdown == rows.drawdown.tolist()
    assert set(curve.flat) == {1000.0}
    hold = Portfolio(PortfolioConfig(1000.0, 0.00055, 1.0, 2.0))
    hold.apply(Action.BUY, float(rows.close.iloc[0]))
    assert curve.buy_and_hold == [hold.mark(float(c)) for c in rows.close]
    move = rows.close.iloc[-1] / rows.close.iloc[0]
    assert curve.buy_and_hold[-1] == pytest.approx(1000.0 * move, rel=2e-3)  # fees and slippage only


def test_a_coarse_resolution_keeps_each_bars_last_equity_and_its_deepest_drawdown(conn: sqlite3.Connection) -> None:
    rows = _equity(conn, "BTCUSDT")
    level = 3_600_000
    curve = equity_curve(conn, Scope(symbol="BTCUSDT"), level, int(rows.open_time_ms.min()),
                         int(rows.open_time_ms.max()))
    grouped = rows.groupby(rows.open_time_ms // level * level)
    assert curve.times_ms == grouped.size().index.tolist()
    assert curve.equity == grouped.equity.last().tolist()
    assert curve.drawdown == grouped.drawdown.max().tolist()


def test_several_symbols_add_up_with_each_ones_latest_equity(conn: sqlite3.Connection) -> None:
    btc, eth = _equity(conn, "BTCUSDT"), _equity(conn, "ETHUSDT")
    level = 86_400_000
    start = int(min(btc.open_time_ms.min(), eth.open_time_ms.min()))
    end = int(max(btc.open_time_ms.max(), eth.open_time_ms.max()))
    curve = equity_curve(conn, Scope(), level, start, end)
    assert curve.symbols == ["BTCUSDT", "ETHUSDT"] and [a.symbol for a in accounts(conn, Scope())] == curve.symbols
    last_btc = btc.groupby(btc.open_time_ms // level * level).equity.last()
    last_eth = eth.groupby(eth.open_time_ms // level * level).equity.last()
    both = pd.concat([last_btc.rename("btc"), last_eth.rename("eth")], axis=1).sort_index().ffill()
    expected = both.sum(axis=1, min_count=1)
    assert curve.times_ms == expected.index.tolist()
    assert curve.equity == pytest.approx(expected.tolist(), rel=1e-15)
    assert curve.flat[-1] == 2000.0 and curve.flat[0] == 1000.0  # ETH joins later (October 2023)
    peaks = pd.Series(curve.equity).cummax()
    assert curve.drawdown == pytest.approx((1 - pd.Series(curve.equity) / peaks).tolist())

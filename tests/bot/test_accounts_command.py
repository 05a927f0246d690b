"""``shadow accounts``: the accounts side by side over a range, per symbol and in total, each
figure read from the ledger's own rows (equity, fills, trades, candles)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.commands.common import console
from env.portfolio import Portfolio, PortfolioConfig
from state.account_curves import account_curves
from state.database import connect_reader
from state.ledger import Ledger
from state.replay import replay_decisions
from tests.conftest import with_funding
from trainer.evaluation.account_figures import TOTAL, compare_accounts

runner = CliRunner()
CONFIG = PortfolioConfig(initial_balance=1000.0, commission=0.00055, slippage_bps=2.0)


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory, btc_candles: pd.DataFrame, eth_candles: pd.DataFrame) -> Path:
    """Three accounts on real candles: 'busy' trades BTCUSDT (a perpetual: it pays and
    receives funding) and ETHUSDT (spot, 2.0x leverage), 'calm' trades BTCUSDT rarely,
    'idle' never trades."""
    path = tmp_path_factory.mktemp("accounts") / "shadow.sqlite"
    leveraged = PortfolioConfig(initial_balance=500.0, commission=0.0004, max_position_size=2.0)
    perpetual = with_funding(btc_candles.iloc[:1500].reset_index(drop=True))
    streams = [
        ("busy", "BTCUSDT", perpetual, 0.2, CONFIG),
        ("calm", "BTCUSDT", perpetual, 0.02, CONFIG),
        ("idle", "BTCUSDT", perpetual, 0.0, CONFIG),
        ("busy", "ETHUSDT", eth_candles.iloc[:800], 0.2, leveraged),
    ]

    async def fill() -> None:
        async with await Ledger.open(path) as ledger:
            for seed, (account, symbol, frame, p, config) in enumerate(streams):
                for record, _ in replay_decisions(frame, symbol=symbol, seed=seed, trade_probability=p,
                                                  account=account, portfolio=Portfolio(config)):
                    await ledger.record_decision(record)

    asyncio.run(fill())
    return path


def figures(db: Path, **options: object) -> dict[tuple[str, str], object]:
    with closing(connect_reader(db)) as conn:
        return {(f.account, f.symbol): f for f in compare_accounts(account_curves(conn, **options))}


def rows(db: Path, query: str, *params: object) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(query, params).fetchall()


def test_each_figure_is_the_ledgers(ledger: Path) -> None:
    by_key = figures(ledger)
    assert list(by_key) == [("busy", "BTCUSDT"), ("busy", "ETHUSDT"), ("busy", TOTAL), ("calm", "BTCUSDT"),
                            ("idle", "BTCUSDT")]
    for (account, symbol), f in by_key.items():
        if symbol == TOTAL:
            continue
        equity = np.array([e for (e,) in rows(ledger, "SELECT equity FROM equity WHERE account = ? AND symbol = ? "
                                                      "ORDER BY open_time_ms", account, symbol)])
        (initial,) = rows(ledger, "SELECT initial_balance FROM positions WHERE account = ? AND symbol = ?",
                          account, symbol)[0]
        (fees,) = rows(ledger, "SELECT coalesce(sum(fee), 0) FROM fills WHERE account = ? AND symbol = ?",
                       account, symbol)[0]
        (trades,) = rows(ledger, "SELECT count(*) FROM trades WHERE account = ? AND symbol = ?", account, symbol)[0]
        (funding,) = rows(ledger, "SELECT coalesce(sum(amount), 0) FROM funding WHERE account = ? AND symbol = ?",
                          account, symbol)[0]
        closes = [c for (c,) in rows(ledger, "SELECT close FROM equity WHERE account = ? AND symbol = ? "
                                              "ORDER BY open_time_ms", account, symbol)]
        curve = np.concatenate(([initial], equity))
        m = f.metrics
        assert (f.start_equity, f.final_equity, f.decisions) == (initial, equity[-1], len(equity))
        assert m.total_return == equity[-1] / initial - 1 and m.n_trades == trades
        assert m.fees_paid == pytest.approx(fees, rel=1e-12)  # the cumulative fees_paid vs a SQL sum of fills
        assert m.funding_paid == pytest.approx(funding, rel=1e-12, abs=1e-15)  # its account's own payments
        assert m.max_drawdown == pytest.approx(float(np.max(1 - curve / np.maximum.accumulate(curve))), abs=1e-15)
        assert f.buy_and_hold_return == closes[-1] / closes[0] - 1
        assert f.timing == m.total_return - f.net_exposure * f.buy_and_hold_return
    assert by_key["idle", "BTCUSDT"].metrics.total_return == 0.0 and by_key["idle", "BTCUSDT"].timing == 0.0
    assert by_key["idle", "BTCUSDT"].net_exposure == 0.0 and by_key["idle", "BTCUSDT"].metrics.sharpe == 0.0
    assert by_key["busy", "BTCUSDT"].metrics.n_trades > 5 * by_key["calm", "BTCUSDT"].metrics.n_trades
    busy, calm = by_key["busy", "BTCUSDT"].metrics.funding_paid, by_key["calm", "BTCUSDT"].metrics.funding_paid
    assert busy != 0.0 and busy != calm and by_key["idle", "BTCUSDT"].metrics.funding_paid == 0.0
    assert by_key["busy", TOTAL].metrics.funding_paid == busy  # ETHUSDT is spot


def test_net_exposure_is_the_notional_held_over_equity(ledger: Path) -> None:
    """Leverage counts: the 2x ETHUSDT account holds about twice its equity while in a position."""
    f = figures(ledger)["busy", "ETHUSDT"]
    held = rows(ledger, "SELECT side FROM equity WHERE account = 'busy' AND symbol = 'ETHUSDT' ORDER BY open_time_ms")
    sides = np.array([0, *[s for (s,) in held][:-1]])
    in_position = sides != 0
    assert f.metrics.exposure == pytest.approx(float(np.mean(in_position)))
    per_side = f.net_exposure / float(np.mean(sides)) if np.mean(sides) else None
    assert per_side is None or 1.8 < per_side < 2.2  # ~2x notional while in a position, signed


def test_a_range_starts_from_the_money_after_the_decision_before_it(ledger: Path) -> None:
    times = [t for (t,) in rows(ledger, "SELECT open_time_ms FROM equity WHERE account = 'calm' ORDER BY 1")]
    f = figures(ledger, start_ms=times[500], end_ms=times[1000])["calm", "BTCUSDT"]
    (before,) = rows(ledger, "SELECT equity FROM equity WHERE account = 'calm' AND open_time_ms = ?", times[499])[0]
    (last,) = rows(ledger, "SELECT equity FROM equity WHERE account = 'calm' AND open_time_ms = ?", times[999])[0]
    assert (f.decisions, f.first_ms, f.last_ms) == (500, times[500], times[999])
    assert (f.start_equity, f.final_equity, f.metrics.total_return) == (before, last, last / before - 1)
    closes = dict(rows(ledger, "SELECT open_time_ms, close FROM candles WHERE symbol = 'BTCUSDT'"))
    assert f.buy_and_hold_return == closes[times[999]] / closes[times[499]] - 1


def test_the_total_sums_the_symbols_money(ledger: Path) -> None:
    by_key = figures(ledger)
    btc, eth, total = by_key["busy", "BTCUSDT"], by_key["busy", "ETHUSDT"], by_key["busy", TOTAL]
    assert total.start_equity == btc.start_equity + eth.start_equity
    assert total.final_equity == pytest.approx(btc.final_equity + eth.final_equity, rel=1e-15)
    weights = np.array([btc.start_equity, eth.start_equity]) / total.start_equity
    assert total.metrics.total_return == pytest.approx(
        weights @ [btc.metrics.total_return, eth.metrics.total_return], rel=1e-12)
    assert total.buy_and_hold_return == pytest.approx(
        weights @ [btc.buy_and_hold_return, eth.buy_and_hold_return], rel=1e-12)
    assert total.metrics.n_trades == btc.metrics.n_trades + eth.metrics.n_trades
    assert total.decisions == btc.decisions + eth.decisions  # the two symbols' candles never coincide here


def test_the_command_prints_every_account_and_filters(ledger: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "width", 220)
    table = runner.invoke(app, ["accounts", "--db", str(ledger)])
    assert table.exit_code == 0, table.output
    for account in ("busy", "calm", "idle"):
        assert f"\n {account} " in table.output
    assert "timing" in table.output and "funding" in table.output and " total " in table.output
    document = json.loads(runner.invoke(app, ["accounts", "--db", str(ledger), "--json", "--account", "calm,idle",
                                              "--symbol", "BTCUSDT"]).output)
    assert [(d["account"], d["symbol"]) for d in document] == [("calm", "BTCUSDT"), ("idle", "BTCUSDT")]
    assert document[0]["metrics"]["n_trades"] == figures(ledger)["calm", "BTCUSDT"].metrics.n_trades
    empty = runner.invoke(app, ["accounts", "--db", str(ledger), "--from", "2030-01-01"])
    assert empty.exit_code == 0 and "no decisions in the range" in empty.output
    unknown = runner.invoke(app, ["accounts", "--db", str(ledger), "--account", "nosuch"])
    assert "no account 'nosuch' in the ledger; it has busy, calm, idle" in str(unknown.exception)

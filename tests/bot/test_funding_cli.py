"""Funding from the command line: ``shadow backtest`` reports it beside the fees, ``shadow
trades`` and ``shadow status`` show it from the ledger, and a bad funding column is one line,
status 2, nothing written."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pandas as pd
import pytest

from env.candles import candles_to_seed_csv
from state.ledger import Ledger
from state.replay import replay_decisions
from tests.bot.test_evaluate_cli import run
from tests.conftest import with_funding


@pytest.fixture(scope="module")
def perpetual(btc_candles: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("perp") / "btc_perp.csv"
    candles_to_seed_csv(with_funding(btc_candles.iloc[:4000]), path)
    return path


def test_backtest_reports_funding_beside_fees(tmp_path: Path, perpetual: Path, monkeypatch, capsys) -> None:
    out_dir = tmp_path / "bt"
    code, out, err = run(monkeypatch, capsys, "backtest", "--candles", str(perpetual), "-s", "buy_and_hold",
                         "--no-risk", "--out", str(out_dir))
    assert code == 0, err
    metrics = json.loads((out_dir / "metrics.json").read_text())
    held = metrics["results"]["buy_and_hold"]
    assert metrics["candles"]["funding"] is True
    # long from 03:39 over 8 funding times (08:00 -3e-4, 16:00 +5e-4, 00:00 +4e-4, ...): paid on balance
    assert held["funding_paid"] > 0 and metrics["results"]["flat"]["funding_paid"] == 0.0
    trades = pd.read_csv(out_dir / "trades.csv")
    assert "funding" in trades and trades["funding"].iloc[-1] == pytest.approx(held["funding_paid"])
    assert "funding paid" in out and "fees paid" in out


@pytest.mark.parametrize(("cell", "problem"), [
    ("", "funding_rate is empty (a gap"),
    ("1bp", "funding_rate '1bp' is not a number"),
    ("0.08", "funding_rate 0.08 is beyond the sane bound of +-0.05 per funding time"),
], ids=["gap", "not-a-number", "out-of-bound"])
def test_a_bad_funding_column_is_one_line_and_writes_nothing(tmp_path: Path, perpetual: Path, monkeypatch, capsys,
                                                             cell: str, problem: str) -> None:
    frame = pd.read_csv(perpetual, dtype={"funding_rate": str})
    frame.loc[500, "funding_rate"] = cell
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    out_dir = tmp_path / "bt"
    code, _, err = run(monkeypatch, capsys, "backtest", "--candles", str(bad), "--out", str(out_dir))
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert f"{bad}, line 502: {problem}" in err
    assert not out_dir.exists()


def test_trades_and_status_show_the_funding_of_a_perpetual_ledger(tmp_path: Path, btc_candles: pd.DataFrame,
                                                                  monkeypatch, capsys) -> None:
    db = tmp_path / "shadow.sqlite"
    records = [r for r, _ in replay_decisions(with_funding(btc_candles.iloc[:2000]), seed=3, trade_probability=0.02)]

    async def fill() -> None:
        async with await Ledger.open(db) as ledger:
            for record in records:
                await ledger.record_decision(record)

    asyncio.run(fill())
    trade_funding = [f.trade.funding for r in records for f in r.fills if f.trade is not None]
    code, out, err = run(monkeypatch, capsys, "trades", "--db", str(db), "--last", "100")
    assert code == 0, err
    assert "funding" in out.splitlines()[2] and f"funding {sum(trade_funding):+,.4f} (paid +, received -)" in out
    code, out, err = run(monkeypatch, capsys, "status", "--db", str(db))
    assert code == 0, err
    paid = records[-1].state.funding_paid
    assert paid != 0.0 and any(line.split()[:2] == ["funding", "paid"] and f"{paid:+,.4f}" in line
                               for line in out.splitlines())

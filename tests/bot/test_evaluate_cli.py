"""``shadow backtest`` and ``shadow evaluate`` from the command line, bad input included."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from bot.cli import main
from env.candles import candles_to_seed_csv, resample_candles
from tests.conftest import BTC_SAMPLE as SAMPLE
from tests.conftest import ETH_SAMPLE, PREFIX


def run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run ``shadow ARGS`` as the console script does; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["shadow", *args])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def test_backtest_writes_metrics_trades_and_report(tmp_path, monkeypatch, capsys):
    out_dir = tmp_path / "bt"
    code, out, err = run(monkeypatch, capsys, "backtest", "--strategy", "sma:fast=20,slow=100",
                         "--from", "2023-03-06", "--to", "2023-03-08", "--out", str(out_dir))
    assert code == 0, err
    metrics = json.loads((out_dir / "metrics.json").read_text())
    strategy = "sma:fast=20,slow=100,short=false"
    assert metrics["strategy"] == strategy
    assert list(metrics["results"])[:3] == [strategy, "buy_and_hold", "flat"]
    assert metrics["candles"]["first_decision"] == "2023-03-06T00:00:00"
    assert metrics["candles"]["n_steps"] == 2 * 1440 - 1
    trades = pd.read_csv(out_dir / "trades.csv")
    assert len(trades[trades.status == "closed"]) == metrics["results"][strategy]["n_trades"] > 0
    assert (out_dir / "report.png").stat().st_size > 50_000
    assert "total return" in out and "buy_and_hold" in out


def test_backtest_runs_a_ppo_model(tmp_path, monkeypatch, capsys, ppo_model):
    code, out, err = run(monkeypatch, capsys, "backtest", "-s", f"ppo:{ppo_model}", "--from", "2023-03-20",
                         "--out", str(tmp_path / "bt"))
    assert code == 0, err
    metrics = json.loads((tmp_path / "bt" / "metrics.json").read_text())
    assert metrics["strategy"] == f"ppo:{ppo_model}"
    assert f"ppo:{ppo_model} on btcusdt_1m_2023-03.csv.gz" in out


def test_a_ppo_model_that_blows_up_is_reported_as_ended_early(tmp_path, monkeypatch, capsys, decisive_ppo_model):
    """A trigger-happy PPO policy without the risk guard, at a 0.1% fee (Bybit's spot taker
    fee), hits the env's blow-up rule days before the data ends; so do the SMA, RSI and
    random baselines, while buy & hold and flat run to the end. The backtest says when and
    why for each, in the table, in metrics.json and on the chart, and still writes them all."""
    monkeypatch.setenv("SHADOW_ENV__COMMISSION", "0.001")
    out_dir = tmp_path / "bt"
    code, out, err = run(monkeypatch, capsys, "backtest", "-s", f"ppo:{decisive_ppo_model}", "--no-risk",
                         "--out", str(out_dir))
    assert code == 0, err
    metrics = json.loads((out_dir / "metrics.json").read_text())
    results = metrics["results"]
    main = results[f"ppo:{decisive_ppo_model}"]
    full = metrics["candles"]["n_steps"]
    assert main["ended_early"] is not None and main["n_steps"] == main["ended_early"]["steps"] < full
    assert main["ended_early"]["reason"].startswith("blow-up: equity ") and main["final_equity"] < 50
    assert results["buy_and_hold"]["ended_early"] is None and results["buy_and_hold"]["n_steps"] == full
    baselines_ended = [name for name, r in results.items() if r["ended_early"] and name != metrics["strategy"]]
    assert baselines_ended  # a baseline ends early too, and is said to
    table = " ".join(out.split())
    assert "ended early" in table and f"after {main['ended_early']['steps']:,} of {full:,} steps: blow-up" in table
    for name in baselines_ended:
        assert results[name]["n_steps"] == results[name]["ended_early"]["steps"] < full
    assert (out_dir / "report.png").stat().st_size > 50_000


@pytest.mark.parametrize("args, message", [
    (["-s", "macd"], "unknown strategy 'macd'"),
    (["-s", "sma:fast=ten"], "fast='ten' is not an integer"),
    (["--candles", "missing.csv"], "missing.csv: file not found"),
    (["--from", "March"], "--from 'March' is not a date"),
    (["--from", "2025-01-01"], "no candles in [2025-01-01, end)"),
    (["-s", "ppo:nowhere.zip"], "nowhere.zip: no such model file"),
    (["--out", "BLOCKER/bt"], "BLOCKER/bt: cannot create the directory (Not a directory)"),
])
def test_backtest_bad_input_is_one_clear_line(tmp_path, monkeypatch, capsys, args, message):
    blocker = tmp_path / "file"
    blocker.write_text("a file where --out wants a directory")
    args = [a.replace("BLOCKER", str(blocker)) for a in args]
    code, _, err = run(monkeypatch, capsys, "backtest", "--out", str(tmp_path / "bt"), *args)  # a later --out wins
    assert code == 2
    assert err.startswith("error: ") and message.replace("BLOCKER", str(blocker)) in " ".join(err.split())
    assert "Traceback" not in err
    assert not (tmp_path / "bt").exists()  # nothing half-written


def test_backtest_refuses_a_model_built_for_another_lookback(tmp_path, monkeypatch, capsys, ppo_model):
    monkeypatch.setenv("SHADOW_ENV__LOOKBACK_WINDOW", "30")
    code, _, err = run(monkeypatch, capsys, "backtest", "-s", f"ppo:{ppo_model}", "--out", str(tmp_path / "bt"))
    assert code == 2 and "trained with lookback_window=20, configured 30" in " ".join(err.split())


def test_backtest_never_overwrites_an_earlier_run(tmp_path, monkeypatch, capsys):
    out_dir = tmp_path / "bt"
    out_dir.mkdir()
    (out_dir / "metrics.json").write_text("earlier run")
    code, _, err = run(monkeypatch, capsys, "backtest", "--to", "2023-03-02", "--out", str(out_dir))
    assert code == 2 and "directory is not empty" in err
    assert (out_dir / "metrics.json").read_text() == "earlier run"
    code, _, err = run(monkeypatch, capsys, "backtest", "--to", "2023-03-02", "--out", str(out_dir), "--force")
    assert code == 0, err
    assert json.loads((out_dir / "metrics.json").read_text())["strategy"]


def test_bad_evaluation_setting_names_field_and_value(tmp_path, monkeypatch, capsys):
    code, _, err = run(monkeypatch, capsys, "evaluate", "--test-candles", "1", "--out", str(tmp_path / "wf"))
    assert code == 2 and "evaluation.test_candles: 1" in err


def test_evaluate_walk_forward_tiny(tmp_path, monkeypatch, capsys):
    sample = Path(__file__).resolve().parents[2] / "data" / "sample" / "ethusdt_1m_2023-10.csv.gz"
    code, out, err = run(monkeypatch, capsys, "evaluate", "--walk-forward", "--candles", str(sample),
                         "--train-candles", "600", "--test-candles", "300", "--folds", "2", "--timesteps", "64",
                         "--symbol", "ETHUSDT", "--out", str(tmp_path / "wf"))
    assert code == 0, err
    summary = json.loads((tmp_path / "wf" / "walk_forward.json").read_text())
    assert len(summary["folds"]) == 2 and summary["walk_forward"]["total_timesteps"] == 64
    assert {"ppo", "buy_and_hold", "flat"} <= set(summary["aggregate"])
    assert (tmp_path / "wf" / "fold_02" / "model.meta.json").is_file()
    assert "fold 2/2" in out and "chained return" in out and "mean timing" in out
    assert summary["walk_forward"]["profile"] == "default" and summary["seeds"] is None
    assert json.loads((tmp_path / "wf" / "fold_02" / "model.meta.json").read_text())["action_mode"] == "target"


def test_evaluate_walk_forward_with_seeds_and_the_seed_profile(tmp_path, monkeypatch, capsys):
    sample = Path(__file__).resolve().parents[2] / "data" / "sample" / "ethusdt_1m_2023-10.csv.gz"
    code, out, err = run(monkeypatch, capsys, "evaluate", "--candles", str(sample), "--train-candles", "600",
                         "--test-candles", "300", "--folds", "2", "--timesteps", "64", "--seeds", "2",
                         "--profile", "seed", "--out", str(tmp_path / "wf"))
    assert code == 0, err
    summary = json.loads((tmp_path / "wf" / "walk_forward.json").read_text())
    assert summary["walk_forward"]["profile"] == "seed" and summary["seeds"]["seeds"] == 2
    assert {"ppo#1", "ppo#2"} <= set(summary["aggregate"])
    meta = json.loads((tmp_path / "wf" / "fold_02" / "seed_1001" / "model.meta.json").read_text())
    assert (meta["seed"], meta["action_mode"], meta["env"]["reward"]["mode"]) == (1001, "trade", "seed")
    assert "PPO over 2 seeds, mean (range): chained return" in " ".join(out.split())


def test_backtest_on_the_ledger_equals_the_backtest_on_the_same_candles_from_the_file(
    tmp_path, monkeypatch, capsys, btc_ledger
):
    window = ["--strategy", "sma:fast=20,slow=100", "--from", "2023-03-01T06:00", "--to", "2023-03-02T04:00"]
    code, out, err = run(monkeypatch, capsys, "backtest", "--db", str(btc_ledger), "--symbol", "BTCUSDT",
                         "--interval", "1m", *window, "--out", str(tmp_path / "ledger"))
    assert code == 0, err
    assert "on shadow.sqlite BTCUSDT 1m" in " ".join(out.split())
    code, _, err = run(monkeypatch, capsys, "backtest", *window, "--out", str(tmp_path / "file"))
    assert code == 0, err
    from_ledger, from_file = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("ledger", "file"))
    assert from_ledger["candles"]["source"] == f"{btc_ledger} BTCUSDT 1m"
    assert from_ledger["candles"]["first_decision"] == "2023-03-01T06:00:00"
    assert from_ledger["results"] == from_file["results"]
    assert from_ledger["results"]["sma:fast=20,slow=100,short=false"]["n_trades"] > 0
    assert (tmp_path / "ledger" / "trades.csv").read_text() == (tmp_path / "file" / "trades.csv").read_text()


@pytest.mark.parametrize("args, message", [
    (["--db", "LEDGER", "--candles", "x.csv"], "--candles and --db are two sources of candles"),
    (["--symbol", "BTCUSDT"], "--symbol and --interval choose candles in a ledger; they need --db"),
    (["--db", "missing.sqlite"], "ledger missing.sqlite: no such file"),
    (["--db", "LEDGER", "--symbol", "ETHUSDT"], "no ETHUSDT candles; it holds BTCUSDT 1m (1700 candles)"),
    (["--db", "LEDGER", "--interval", "1"], "no 1 candles; it holds BTCUSDT 1m (1700 candles)"),
    (["--db", "LEDGER", "--from", "2023-03-05"], ("no BTCUSDT 1m candles in [2023-03-05, last candle); it holds "
                                                  "1700 BTCUSDT 1m candles from 2023-03-01 00:00 to 2023-03-02 04:19")),
    (["--db", "LEDGER", "--from", "2023-03-02T04:19"],
     f"leaves 1 candle(s) to trade: need {PREFIX} candles of warm-up"),
])
def test_backtest_on_the_ledger_bad_input_is_one_clear_line(tmp_path, monkeypatch, capsys, btc_ledger, args, message):
    args = [str(btc_ledger) if a == "LEDGER" else a for a in args]
    code, _, err = run(monkeypatch, capsys, "backtest", *args, "--out", str(tmp_path / "bt"))
    assert code == 2, err
    assert err.startswith("error: ") and message in " ".join(err.split())
    assert "Traceback" not in err
    assert not (tmp_path / "bt").exists()


def test_evaluate_signal_on_the_bundled_candles(tmp_path, monkeypatch, capsys):
    code, out, err = run(monkeypatch, capsys, "evaluate", "--signal", "--out", str(tmp_path / "signal"))
    assert code == 0, err
    document = json.loads((tmp_path / "signal" / "signal.json").read_text())
    assert document["sources"] == {"btcusdt_1m_2023-03": str(SAMPLE)}
    assert document["costs"]["round_trip_bps"] == pytest.approx(8.0)  # 2 x 0.04% commission, no slippage
    assert document["settings"] | {"horizons": None} == {"horizons": None, "folds": 5, "lookback": 1,
                                                          "model": "ridge", "features": 15}
    results = document["results"]
    assert [(r["interval"], r["n_candles"]) for r in results] == [("1m", 30_240), ("5m", 6_048), ("15m", 2_016),
                                                                 ("1h", 504)]
    for r in results:
        assert [h["horizon"] for h in r["horizons"]] == [1, 5, 15]
        assert all(len(h["folds"]) == 5 for h in r["horizons"])
        assert r["verdict_line"] in " ".join(out.split())
        assert f"Is there anything to learn at {r['interval']}?" in out
    one_minute = results[0]
    # On real 1m candles the features predict a tiny fraction of what a round trip costs.
    assert all(abs(h["edge_bps"]) < 1.0 for h in one_minute["horizons"])
    assert one_minute["verdict"] != "something to learn"
    assert "a round trip costs 8.0 bps" in one_minute["verdict_line"]
    assert f"signal: {tmp_path / 'signal' / 'signal.json'}" in out


def test_evaluate_signal_on_several_symbols_from_data_files(tmp_path, monkeypatch, capsys):
    shutil.copy(SAMPLE, tmp_path / "BTCUSDT.csv.gz")
    shutil.copy(ETH_SAMPLE, tmp_path / "ETHUSDT.csv.gz")
    code, out, err = run(monkeypatch, capsys, "evaluate", "--signal", "--symbols", "BTCUSDT,ETHUSDT",
                         "--data", str(tmp_path / "{symbol}.csv.gz"), "--interval", "5m,15m", "--horizons", "1,3",
                         "--model", "gbm", "--out", str(tmp_path / "signal"))
    assert code == 0, err
    document = json.loads((tmp_path / "signal" / "signal.json").read_text())
    assert document["sources"] == {"BTCUSDT": str(tmp_path / "BTCUSDT.csv.gz"),
                                   "ETHUSDT": str(tmp_path / "ETHUSDT.csv.gz")}
    assert [(r["symbol"], r["interval"], r["n_candles"]) for r in document["results"]] == [
        ("BTCUSDT", "5m", 6_048), ("BTCUSDT", "15m", 2_016), ("ETHUSDT", "5m", 2_000), ("ETHUSDT", "15m", 666)]
    assert document["settings"]["model"] == "gbm"
    assert "ETHUSDT 15m: predicts" in out and "3 x 15m" in out


@pytest.mark.parametrize("args, message", [
    (["--interval", "7m"], "--interval: unknown interval '7m'; use one of 1m, 3m"),
    (["--interval", "1w"], "--interval 1w: the signal check resamples into intervals that divide a day"),
    (["--horizons", "1,x"], "--horizons '1,x': give whole numbers of candles"),
    (["--horizons", "0,5"], "--horizons '0,5': a horizon is at least 1 candle"),
    (["--folds", "0"], "evaluation.max_folds: 0 (set by --folds)"),
    (["--lookback", "0"], "lookback=0: must be at least 1 feature row"),
    (["--model", "svm"], "unknown model 'svm'; use one of ridge, gbm"),
    (["--data", "FIVE_MINUTES", "--interval", "1m"], ("cannot resample 300 s candles into 60 s ones: the new "
                                                      "interval must be a whole multiple of the old")),
    (["--interval", "1h", "--horizons", "1,100"], ("btcusdt_1m_2023-03 1h: 504 candles are too few for 5 fold(s) "
                                                   "at horizons up to 100: need at least")),
    (["--data", "TINY"], "tiny 1m: 400 candles are too few"),
    (["--data", "missing.csv"], "missing.csv: file not found"),
    (["--timesteps", "100"], "--timesteps is a PPO walk-forward option; --signal does not train PPO"),
    (["--single-split"], "--single-split is a PPO walk-forward option"),
    (["--symbols", "BTCUSDT", "--data", "x.csv"], "--data x.csv: with --symbols, put {symbol} in the path"),
    (["--symbols", "BTCUSDT", "--symbol", "BTC"], "give --symbol (a name for one --data file) or --symbols"),
    (["--symbols", "BTCUSDT", "--repair"], "--repair works on one --data file"),
    (["--symbols", "BTC"], "--symbols BTC: cannot tell base from quote"),
])
def test_evaluate_signal_bad_input_is_one_clear_line(tmp_path, monkeypatch, capsys, btc_candles, args, message):
    files = {"TINY": tmp_path / "tiny.csv", "FIVE_MINUTES": tmp_path / "five.csv"}
    candles_to_seed_csv(btc_candles.iloc[:400], files["TINY"])
    candles_to_seed_csv(resample_candles(btc_candles, 300_000), files["FIVE_MINUTES"])
    args = [str(files.get(a, a)) for a in args]
    code, _, err = run(monkeypatch, capsys, "evaluate", "--signal", *args, "--out", str(tmp_path / "signal"))
    assert code == 2, err
    assert err.startswith("error: ") and message in " ".join(err.split())
    assert "Traceback" not in err
    assert not (tmp_path / "signal").exists()  # nothing written


@pytest.mark.parametrize("flag", [["--symbols", "BTCUSDT"], ["--interval", "1h"], ["--horizons", "1"],
                                  ["--lookback", "2"], ["--model", "gbm"]])
def test_signal_options_need_signal(tmp_path, monkeypatch, capsys, flag):
    code, _, err = run(monkeypatch, capsys, "evaluate", *flag, "--out", str(tmp_path / "wf"))
    assert code == 2 and f"{flag[0]} is an option of --signal" in err
    assert not (tmp_path / "wf").exists()


def test_evaluate_signal_never_overwrites_an_earlier_run(tmp_path, monkeypatch, capsys):
    out_dir = tmp_path / "signal"
    out_dir.mkdir()
    (out_dir / "signal.json").write_text("earlier run")
    code, _, err = run(monkeypatch, capsys, "evaluate", "--signal", "--out", str(out_dir))
    assert code == 2 and "directory is not empty" in err
    assert (out_dir / "signal.json").read_text() == "earlier run"

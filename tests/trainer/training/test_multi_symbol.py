"""shadow train --symbols: one model per symbol with shadow train's outputs under
save_path/ID, a failing symbol recorded without stopping the others, bad input refused."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from bot.cli import app
from config.errors import UserError
from config.settings import load_settings
from env.candles import load_candles
from strategies.model_metadata import load_metadata
from trainer.training.multi_symbol import SymbolsError, parse_symbols, symbol_settings

SMALL = ["--num-candles", "1500", "--total-timesteps", "64", "--n-envs", "1", "--n-steps", "32",
         "--batch-size", "32", "--n-epochs", "1", "--episode-length", "40", "--checkpoint-freq", "64",
         "--eval-freq", "64", "--no-progress", "--workers", "2"]


def test_parse_symbols() -> None:
    assert parse_symbols("BTCUSDT, ETHUSDT", "linear") == ["BTC/USDT:USDT", "ETH/USDT:USDT"]
    assert parse_symbols("btcusdt,ETH/BTC", "spot") == ["BTC/USDT", "ETH/BTC"]
    with pytest.raises(SymbolsError, match="cannot tell base from quote"):
        parse_symbols("BTCXYZ", "linear")
    with pytest.raises(SymbolsError, match="BTCUSDT given more than once"):
        parse_symbols("BTCUSDT,BTC/USDT", "linear")
    with pytest.raises(SymbolsError, match="no symbol given"):
        parse_symbols(" , ", "linear")


def test_each_symbol_gets_shadow_trains_outputs_and_a_failure_stays_alone(
    in_tmp: Path, btc_candles: pd.DataFrame, eth_candles: pd.DataFrame
) -> None:
    for name, frame in (("BTCUSDT", btc_candles), ("ETHUSDT", eth_candles)):
        frame.iloc[:1500][["timestamp", "open", "high", "low", "close", "volume"]].to_csv(
            in_tmp / f"{name}.csv", index=False)
    # Too short for the split: fails inside its worker, after the driver loaded it.
    btc_candles.iloc[:260][["timestamp", "open", "high", "low", "close", "volume"]].to_csv(in_tmp / "XRPUSDT.csv",
                                                                                           index=False)
    result = CliRunner().invoke(app, ["train", "--symbols", "BTCUSDT,ETHUSDT,XRPUSDT", "--data", "{symbol}.csv",
                                      *SMALL])
    assert result.exit_code == 1, (result.output, result.exception)
    assert "XRP/USDT:USDT: FAILED: XRPUSDT.csv: 260 candles is too short" in result.output
    for market_id, frame in (("BTCUSDT", btc_candles), ("ETHUSDT", eth_candles)):
        models = in_tmp / "models" / "ppo_crypto_model" / market_id
        for path in (models / "ppo_crypto_model_final.zip", models / "checkpoints" / "ppo_model_64_steps.zip",
                     models / "best" / "best_model.zip", in_tmp / "logs" / market_id / "eval" / "evaluations.npz",
                     in_tmp / "logs" / market_id / "env_0" / "monitor.csv"):
            assert path.is_file(), path
        meta = load_metadata(models / "ppo_crypto_model_final.zip")
        assert meta.symbol == f"{market_id[:3]}/USDT:USDT" and meta.num_timesteps == 64
        assert meta.extra["data_source"] == f"{market_id}.csv"
        test = load_candles(in_tmp / "data" / market_id / "test_data.csv")
        assert test["open_time_ms"].iloc[-1] == frame["open_time_ms"].iloc[1499]
        assert test["open_time_ms"].iloc[-1] == meta.extra["split"]["test"]["end_ms"]
    assert "BTC/USDT:USDT: 64 steps, validation return" in result.output
    log = (in_tmp / "ppo_training.log").read_text()  # each worker's log, with the paths its files have now
    assert "model (64 steps) saved: models/ppo_crypto_model/ETHUSDT/ppo_crypto_model_final.zip" in log
    assert not (in_tmp / "models" / "ppo_crypto_model" / "XRPUSDT").exists()


@pytest.mark.parametrize(("flags", "message"), [
    (["--symbols", "BTCUSDT,ETHUSDT", "--data", "one.csv"], r"--data one.csv: with --symbols, put \{symbol\}"),
    (["--symbols", "BTCUSDT", "--symbol", "ETH/USDT"], "give --symbol or --symbols, not both"),
    (["--symbols", "BTCUSDT", "--resume", "x.zip"], "--resume continues one model"),
    (["--symbols", "BTCUSDT", "--backend", "slurm"], r"invalid value for compute\.backend: 'slurm'"),
])
def test_bad_symbol_flags_fail_clearly(in_tmp: Path, flags: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["train", *SMALL, *flags])
    assert isinstance(result.exception, UserError), result.output
    assert re.search(message, str(result.exception)), str(result.exception)
    assert not (in_tmp / "models").exists()


def test_symbol_settings_nest_every_output() -> None:
    settings = load_settings(None, train={"save_path": "m", "log_dir": "l", "test_data_path": "d/t.csv"})
    one = symbol_settings(settings, "ETH/USDT").train
    assert (one.symbol, one.save_path, one.log_dir, one.test_data_path) == (
        "ETH/USDT", Path("m/ETHUSDT"), Path("l/ETHUSDT"), Path("d/ETHUSDT/t.csv"))

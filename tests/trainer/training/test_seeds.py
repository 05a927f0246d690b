"""shadow train --seeds N: N models kept with their validation figures, the best by validation
return copied to the final model's place, the spread reported; bad combinations refused."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from bot.cli import app
from config.settings import load_settings
from env.candles import load_candles
from strategies.model_metadata import load_metadata
from strategies.policy import PolicyStrategy
from strategies.ppo import load_ppo_strategy
from trainer.training.multi_symbol import validation_metrics
from trainer.training.single_symbol import split_candles

SMALL = ["--num-candles", "2000", "--total-timesteps", "512", "--n-envs", "2", "--n-steps", "64",
         "--batch-size", "64", "--n-epochs", "2", "--episode-length", "64", "--checkpoint-freq", "512",
         "--eval-freq", "256", "--no-progress", "--workers", "2"]


def test_three_seeds_are_kept_scored_and_the_best_is_the_final_model(in_tmp: Path,
                                                                     btc_candles: pd.DataFrame) -> None:
    btc_candles.iloc[:2000][["timestamp", "open", "high", "low", "close", "volume"]].to_csv(in_tmp / "btc.csv",
                                                                                           index=False)
    result = CliRunner().invoke(app, ["train", "--data", "btc.csv", "--seeds", "3", "--seed", "4", *SMALL])
    assert result.exit_code == 0, (result.output, result.exception)
    models = in_tmp / "models" / "ppo_crypto_model"
    report = json.loads((models / "seeds.json").read_text())
    assert sorted(report["seeds"]) == ["4", "5", "6"] and report["failed"] == {}
    settings = load_settings(None, train={"data": "btc.csv", "num_candles": 2000})
    validation = split_candles(load_candles(in_tmp / "btc.csv"), settings, "btc.csv").validation.frame
    returns = {}
    for seed, figures in report["seeds"].items():
        final = models / f"seed_{seed}" / "ppo_crypto_model_final.zip"
        assert load_metadata(final).seed == int(seed)
        assert (models / f"seed_{seed}" / "best" / "best_model.zip").is_file()
        assert (in_tmp / "logs" / f"seed_{seed}" / "eval" / "evaluations.npz").is_file()
        assert figures["validation"] == validation_metrics(final, validation, settings).to_dict()
        assert figures["diagnostics"] == load_metadata(final).diagnostics and "flip_rate" in figures["diagnostics"]
        returns[int(seed)] = figures["validation"]["total_return"]
    best = max(returns, key=lambda s: (returns[s], -s))
    assert report["selected_seed"] == best
    assert (models / "ppo_crypto_model_final.zip").read_bytes() == (
        models / f"seed_{best}" / "ppo_crypto_model_final.zip").read_bytes()
    assert load_metadata(models / "ppo_crypto_model_final.zip").seed == best
    served = load_ppo_strategy(models / "ppo_crypto_model_final.zip")  # its export came along: no torch needed
    assert isinstance(served, PolicyStrategy)
    spread = report["spread"]["total_return"]
    assert (spread["min"], spread["max"]) == (min(returns.values()), max(returns.values()))
    assert spread["mean"] == pytest.approx(sum(returns.values()) / 3)
    assert f"seed {best}: validation return" in result.output and "<- selected" in result.output
    assert "over 3 seeds, mean (range): return" in result.output and "timing" in result.output


@pytest.mark.parametrize("extra", [["--symbols", "BTCUSDT,ETHUSDT"], ["--resume", "x.zip"]])
def test_seeds_with_symbols_or_resume_is_one_clear_error(in_tmp: Path, extra: list[str]) -> None:
    result = CliRunner().invoke(app, ["train", "--seeds", "2", *extra])
    assert result.exit_code != 0 and "--seeds 2 trains several fresh models of one symbol" in str(result.exception)
    assert list(in_tmp.iterdir()) == []

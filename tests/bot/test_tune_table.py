"""The best-trials table `shadow tune` prints: funding beside fees when a trial paid any."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console

from bot.commands.tune import _best_table


def rendered(trials: Path) -> str:
    console = Console(width=200, record=True)
    console.print(_best_table(trials))
    return console.export_text()


def trials_csv(tmp_path: Path, funding: list[float]) -> Path:
    path = tmp_path / "trials.csv"
    pd.DataFrame({"number": [0, 1], "state": ["complete", "complete"], "value": [0.02, 0.01], "seeds": [3, 3],
                  "seed_min": [0.01, 0.0], "seed_max": [0.03, 0.02], "mean_timing": [0.001, -0.002],
                  "mean_n_trades": [12.0, 40.0], "mean_fees_to_capital": [0.0125, 0.05],
                  "mean_funding_to_capital": funding, "param_learning_rate": [3e-4, 1e-4]}).to_csv(path, index=False)
    return path


def test_a_perpetual_study_shows_the_funding_each_trial_paid(tmp_path: Path) -> None:
    text = rendered(trials_csv(tmp_path, [0.0042, 0.0017]))
    assert "funding, % capital" in text
    best, second = (line for line in text.splitlines() if line.startswith("│"))
    assert "1.25%" in best and "0.42%" in best and "5.00%" in second and "0.17%" in second


def test_a_spot_study_has_no_funding_column(tmp_path: Path) -> None:
    text = rendered(trials_csv(tmp_path, [0.0, 0.0]))
    assert "fees, % capital" in text and "funding" not in text

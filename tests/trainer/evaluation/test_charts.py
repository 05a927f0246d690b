"""The PNG reports are written, readable and show what they claim to show."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np

from config.settings import EnvSettings
from env.candles import format_ms
from strategies.baselines import BuyAndHold, Flat, RandomStrategy, SmaCross
from trainer.evaluation.backtest import make_env, run_comparison
from trainer.evaluation.charts import plot_backtest, plot_walk_forward


def _distinct_colours(path) -> int:
    pixels = mpimg.imread(path)[..., :3].reshape(-1, 3)
    return len(np.unique((pixels * 255).astype(np.uint8), axis=0))


def test_backtest_report_has_price_equity_and_drawdown_panels(tmp_path, btc_candles):
    results = run_comparison([SmaCross(fast=20, slow=100), BuyAndHold(), Flat()],
                             make_env(btc_candles.iloc[:6000], EnvSettings()))
    path = tmp_path / "report.png"
    fig = plot_backtest(results[0], results[1:], path, title="test run")

    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles == ["Price and the strategy's fills", "Equity against the baselines (same candles, same fees)",
                      "Drawdown from the running peak"]
    price_ax, equity_ax, dd_ax = fig.axes
    markers = sum(len(c.get_offsets()) for c in price_ax.collections)
    assert markers == len(results[0].fills) > 10  # every fill is on the price chart
    assert [line.get_label().split(" (")[0] for line in equity_ax.get_lines()[:3]] == \
        ["buy_and_hold", "flat", "sma:fast=20,slow=100,short=false"]
    assert dd_ax.get_ylim()[0] < -1.0  # the strategy's drawdown is drawn, in percent

    image = mpimg.imread(path)
    assert image.shape[0] > 900 and image.shape[1] > 1300
    assert _distinct_colours(path) > 200


def test_walk_forward_report_has_three_panels(tmp_path, btc_candles):
    env = make_env(btc_candles.iloc[:3000], EnvSettings())
    folds = []
    for start in (300, 1300):
        runs = run_comparison([SmaCross(), BuyAndHold(), Flat()], env, start)
        folds.append({"ppo": runs[0], "buy_and_hold": runs[1], "flat": runs[2]})
    path = tmp_path / "wf.png"
    fig = plot_walk_forward(btc_candles["open_time_ms"].to_numpy()[:3000], btc_candles["close"].to_numpy()[:3000],
                            folds, "ppo", path, title="walk-forward test")
    assert len(fig.axes) == 3
    assert len(fig.axes[2].patches) == 2 * 3  # a bar per fold and strategy
    assert _distinct_colours(path) > 100


def test_runs_the_env_ends_early_stop_their_curves_there_and_say_when(tmp_path, btc_candles):
    """At 20x leverage a random trader and buy & hold both blow up within days of March 2023;
    flat runs to the end. Every curve is drawn to its own end, a cross marks each early end."""
    env = make_env(btc_candles.iloc[:6000], EnvSettings(max_position_size=20.0))
    main, hold, flat = run_comparison([RandomStrategy(seed=1, trade_prob=0.2), BuyAndHold(), Flat()], env)
    assert main.ended_early and hold.ended_early and flat.ended_early is None
    assert len(main.times_ms) < len(flat.times_ms) and len(hold.times_ms) < len(flat.times_ms)

    fig = plot_backtest(main, [hold, flat], tmp_path / "report.png")
    curves = {line.get_label().split(" (")[0]: line for line in fig.axes[1].get_lines() if line.get_marker() != "x"}
    assert {name: len(curves[name].get_xdata()) for name in ("buy_and_hold", "flat", main.strategy)} == {
        "buy_and_hold": len(hold.equity), "flat": len(flat.equity), main.strategy: len(main.equity)}
    crosses = [line for line in fig.axes[1].get_lines() if line.get_marker() == "x"]
    assert len(crosses) == 2
    assert f"ended {format_ms(main.ended_early.time_ms)}" in curves[main.strategy].get_label()
    assert f"ended early at {format_ms(main.ended_early.time_ms)}" in fig.texts[0].get_text()
    assert main.ended_early.reason in fig.texts[0].get_text()

    plot_walk_forward(btc_candles["open_time_ms"].to_numpy()[:6000], btc_candles["close"].to_numpy()[:6000],
                      [{"ppo": main, "buy_and_hold": hold, "flat": flat}], "ppo", tmp_path / "wf.png")
    assert (tmp_path / "wf.png").stat().st_size > 50_000

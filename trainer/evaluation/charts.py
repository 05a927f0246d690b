"""PNG reports a person wants to look at.

Figures are built with matplotlib's object API (``Figure``, no ``pyplot``): no global
backend state, no display needed, safe to call from a daemon thread.

- :func:`plot_backtest`: price with entry/exit markers, equity against buy & hold and
  the other baselines, drawdown; headline numbers in the title.
- :func:`plot_walk_forward`: the test slices on the price chart, the stitched
  out-of-sample equity of every strategy, and each fold's return side by side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.dates as mdates
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from env.candles import format_ms
from env.types import Side
from strategies.base import short_name
from trainer.evaluation.backtest import BacktestResult

STRATEGY_COLOR = "#1f5fbf"
BASELINE_STYLES: dict[str, dict[str, object]] = {
    "buy_and_hold": {"color": "#e08a1e", "lw": 1.4},
    "flat": {"color": "#7f7f7f", "lw": 1.0, "ls": "--"},
}
OTHER_COLORS = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
LONG_COLOR, SHORT_COLOR, EXIT_COLOR = "#1a9850", "#d73027", "#222222"


def plot_backtest(
    main: BacktestResult, others: Sequence[BacktestResult], path: str | Path, title: str = "", dpi: int = 110
) -> Figure:
    """Write the three-panel backtest report to ``path`` and return the figure.

    Args:
        main: the strategy under test.
        others: baselines run on the same candles (buy & hold and flat at least).
        path: PNG file to write.
        title: what was tested (file, symbol...), shown above the headline numbers.
        dpi: resolution (110 gives 1430 x 1045 pixels).
    """
    fig = Figure(figsize=(13, 9.5))
    price_ax, equity_ax, dd_ax = fig.subplots(
        3, 1, sharex=True, gridspec_kw={"height_ratios": [2.2, 1.6, 1.0], "hspace": 0.2}
    )
    longest = max((main, *others), key=lambda r: len(r.times_ms))  # runs the env ended early are shorter
    dates = _dates(longest.times_ms)
    _price_panel(price_ax, main, dates, longest.closes)
    for i, result in enumerate(others):
        _equity_line(equity_ax, result, dates, _style(result.strategy, i))
    _equity_line(equity_ax, main, dates, {"color": STRATEGY_COLOR, "lw": 1.8, "zorder": 5})
    equity_ax.axhline(0.0, color="#bbbbbb", lw=0.8, zorder=0)
    equity_ax.set_ylabel("return (%)")
    _legend_on_top(equity_ax)
    equity_ax.set_title("Equity against the baselines (same candles, same fees)", loc="left", fontsize=10)

    bh = next((r for r in others if r.strategy == "buy_and_hold"), None)
    dd_ax.fill_between(dates[: len(main.equity)], -100 * _drawdown(main.equity), 0, color=STRATEGY_COLOR, alpha=0.35,
                       lw=0, label=short_name(main.strategy))
    if bh is not None:
        dd_ax.plot(dates[: len(bh.equity)], -100 * _drawdown(bh.equity), color=BASELINE_STYLES["buy_and_hold"]["color"],
                   lw=1.0, label="buy_and_hold")
    dd_ax.set_ylabel("drawdown (%)")
    dd_ax.legend(loc="lower left", fontsize=8.5, framealpha=0.9)
    dd_ax.set_title("Drawdown from the running peak", loc="left", fontsize=10)
    _date_axis(dd_ax)

    m = main.metrics
    headline = (
        f"{short_name(main.strategy)}: return {_pct(m.total_return)}"
        + (f" vs buy & hold {_pct(bh.metrics.total_return)}" if bh is not None else "")
        + f"  |  Sharpe {_num(m.sharpe)}  |  max drawdown {_pct(m.max_drawdown, signed=False)}"
        + f"  |  {m.n_trades} trades, win rate {_pct(m.win_rate, signed=False)}  |  fees {m.fees_paid:.2f}"
        + (f", funding {m.funding_paid:+.2f}" if main.perpetual else "")
    )
    end = main.ended_early
    lines = [*([title] if title else []), headline,
             *([f"ended early at {format_ms(end.time_ms)} after {end.steps:,} steps: {end.reason}"] if end else [])]
    fig.suptitle("\n".join(lines), fontsize=10.5, x=0.01, ha="left", y=0.995)
    for ax in (price_ax, equity_ax, dd_ax):
        _grid(ax)
    fig.subplots_adjust(left=0.07, right=0.98, top=0.94 - 0.02 * len(lines), bottom=0.06)
    fig.savefig(path, dpi=dpi)
    return fig


def plot_walk_forward(
    times_ms: npt.NDArray[np.int64],
    closes: npt.NDArray[np.float64],
    folds: Sequence[Mapping[str, BacktestResult]],
    strategy: str,
    path: str | Path,
    title: str = "",
    dpi: int = 110,
) -> Figure:
    """Write the walk-forward report to ``path`` and return the figure.

    Args:
        times_ms, closes: the whole candle series (for the price panel).
        folds: per fold, results by strategy name on that fold's test slice.
        strategy: the name (key in each fold) of the strategy under test.
        path: PNG file to write.
        title: shown above the panels.
        dpi: resolution (110 gives 1430 x 1100 pixels).
    """
    fig = Figure(figsize=(13, 10))
    price_ax, equity_ax, bar_ax = fig.subplots(
        3, 1, gridspec_kw={"height_ratios": [1.5, 1.8, 1.4], "hspace": 0.35}
    )
    price_ax.plot(_dates(times_ms), closes, color="#555555", lw=0.7)
    for i, fold in enumerate(folds):
        test = max(fold.values(), key=lambda r: len(r.times_ms))  # the whole slice, whoever ended early
        start, end = _dates(test.times_ms[[0, -1]])
        price_ax.axvspan(start, end, color="#1f5fbf" if i % 2 == 0 else "#6fa0e8", alpha=0.15, lw=0)
        price_ax.text(start + (end - start) / 2, 0.97, str(i + 1), transform=price_ax.get_xaxis_transform(),
                      ha="center", va="top", fontsize=8, color="#1f3f7f")
    price_ax.set_title("Price; shaded and numbered: the out-of-sample test slices (each fold's model trained only "
                       "on candles before its slice)",
                       loc="left", fontsize=10)
    price_ax.set_ylabel("close")
    _date_axis(price_ax)

    names = list(folds[0]) if folds else []
    for i, name in enumerate(n for n in names if n != strategy):
        dates, pct = _stitched(folds, name)
        equity_ax.plot(dates, pct, label=f"{short_name(name)} ({_pct(pct[-1] / 100)})", **_style(name, i))
    dates, pct = _stitched(folds, strategy)
    equity_ax.plot(dates, pct, color=STRATEGY_COLOR, lw=1.8, zorder=5,
                   label=f"{short_name(strategy)} ({_pct(pct[-1] / 100)})")
    for fold in folds[1:]:
        equity_ax.axvline(_dates(fold[strategy].times_ms[:1])[0], color="#999999", lw=0.7, ls=":")
    equity_ax.axhline(0.0, color="#bbbbbb", lw=0.8, zorder=0)
    equity_ax.set_title("Out-of-sample equity, test slices chained (compounded)", loc="left", fontsize=10)
    equity_ax.set_ylabel("return (%)")
    _legend_on_top(equity_ax)
    _date_axis(equity_ax)

    width = 0.8 / max(len(names), 1)
    order = [strategy] + [n for n in names if n != strategy]
    x = np.arange(len(folds))
    for j, name in enumerate(order):
        values = [100 * fold[name].metrics.total_return for fold in folds]
        style = {"color": STRATEGY_COLOR} if name == strategy else {"color": _style(name, j - 1)["color"]}
        bar_ax.bar(x + (j - (len(order) - 1) / 2) * width, values, width, label=short_name(name), **style)
    bar_ax.axhline(0.0, color="#555555", lw=0.8)
    starts = [_dates(fold[strategy].times_ms[:1])[0].astype("datetime64[m]") for fold in folds]
    bar_ax.set_xticks(x, [f"fold {i + 1}\n{str(t).replace('T', ' ')}" for i, t in enumerate(starts)], fontsize=8.5)
    bar_ax.set_ylabel("return (%)")
    bar_ax.set_title("Return of each test slice", loc="left", fontsize=10)
    bar_ax.legend(fontsize=8, ncol=min(len(order), 3), loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    for ax in (price_ax, equity_ax, bar_ax):
        _grid(ax)
    if title:
        fig.suptitle(title, fontsize=12, x=0.01, ha="left")
    fig.subplots_adjust(left=0.07, right=0.98, top=0.93, bottom=0.12)
    fig.savefig(path, dpi=dpi)
    return fig


def _price_panel(ax: Axes, result: BacktestResult, dates: npt.NDArray[np.datetime64],
                 prices: npt.NDArray[np.float64]) -> None:
    ax.plot(dates, prices, color="#555555", lw=0.8, label="close")
    opens = [f for f in result.fills if f.opens]
    closes = [f for f in result.fills if not f.opens]
    size = 42.0 if len(result.fills) < 200 else 16.0  # hundreds of trades: keep the price readable
    for side, marker, color, label in ((Side.LONG, "^", LONG_COLOR, "open long"),
                                       (Side.SHORT, "v", SHORT_COLOR, "open short")):
        chosen = [f for f in opens if f.side == side]
        if chosen:
            ax.scatter(_dates(np.array([f.time_ms for f in chosen])), [f.market_price for f in chosen],
                       marker=marker, s=size, color=color, edgecolor="white", linewidth=0.5, zorder=4,
                       label=f"{label} ({len(chosen)})")
    if closes:
        ax.scatter(_dates(np.array([f.time_ms for f in closes])), [f.market_price for f in closes],
                   marker="x", s=0.6 * size, color=EXIT_COLOR, linewidth=0.8, alpha=0.8, zorder=5,
                   label=f"close ({len(closes)})")
    ax.set_ylabel("price")
    ax.legend(loc="upper left", fontsize=8.5, framealpha=0.9)
    ax.set_title("Price and the strategy's fills", loc="left", fontsize=10)


def _equity_line(ax: Axes, result: BacktestResult, dates: npt.NDArray[np.datetime64], style: Mapping[str, Any]) -> None:
    """The run's return curve; a run the env ended early stops there, marked with an x."""
    pct = 100 * (result.equity / result.equity[0] - 1.0)
    label = f"{short_name(result.strategy)} ({_pct(result.metrics.total_return)}"
    if result.ended_early is not None:
        label += f", ended {format_ms(result.ended_early.time_ms)}"
    lines = ax.plot(dates[: len(pct)], pct, label=label + ")", **style)
    if result.ended_early is not None:
        ax.plot(dates[len(pct) - 1], pct[-1], marker="x", ms=9, mew=2, color=lines[0].get_color(), zorder=6)


def _stitched(folds: Sequence[Mapping[str, BacktestResult]],
              name: str) -> tuple[npt.NDArray[np.datetime64], npt.NDArray[np.float64]]:
    """Chain the test slices: each fold's growth compounds on the previous folds'."""
    dates, values, level = [], [], 1.0
    for fold in folds:
        result = fold[name]
        growth = result.equity / result.equity[0]
        dates.append(_dates(result.times_ms[: len(growth)]))
        values.append(level * growth)
        level *= growth[-1]
    return np.concatenate(dates), 100 * (np.concatenate(values) - 1.0)


def _legend_on_top(ax: Axes) -> None:
    """Legend in two columns above the curves: room is made at the top so it hides none."""
    low, high = ax.get_ylim()
    ax.set_ylim(low, high + 0.4 * (high - low))
    ax.legend(loc="upper left", ncol=2, fontsize=8.5, framealpha=0.9)


def _style(name: str, index: int) -> dict[str, object]:
    return dict(BASELINE_STYLES.get(name, {"color": OTHER_COLORS[index % len(OTHER_COLORS)], "lw": 0.9, "alpha": 0.85}))


def _drawdown(equity: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 1.0 - equity / np.maximum.accumulate(equity)


def _dates(times_ms: npt.NDArray[np.int64]) -> npt.NDArray[np.datetime64]:
    return np.asarray(times_ms, dtype=np.int64).astype("datetime64[ms]")


def _date_axis(ax: Axes) -> None:
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _grid(ax: Axes) -> None:
    ax.grid(True, color="#e6e6e6", lw=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _pct(value: float | None, signed: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:+.1f}%" if signed else f"{100 * value:.1f}%"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"

"""Files a backtest, a walk-forward run or a signal check leaves behind: JSON metrics, CSV tables, PNG.

``metrics.json`` is strict JSON (no NaN or Infinity: undefined ratios are ``null``, see
:mod:`trainer.evaluation.metrics`), so any tool can read it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from config.errors import UserError
from env.candles import format_ms
from env.types import Side
from trainer.evaluation.backtest import BacktestResult, EvaluationSpec
from trainer.evaluation.charts import plot_backtest, plot_walk_forward
from trainer.evaluation.walk_forward import WalkForwardResult

TRADE_COLUMNS: tuple[str, ...] = (
    "strategy", "status", "side", "entry_time", "exit_time", "entry_price", "exit_price", "qty",
    "gross_pnl", "fees", "funding", "net_pnl", "return_pct", "holding_candles",
)


class OutputDirError(UserError):
    """An output directory that would overwrite an earlier run."""


def prepare_out_dir(path: Path, force: bool) -> Path:
    """Create ``path``; refuse one that already holds files unless ``force``, so an
    earlier run's reports (and walk-forward models) are never overwritten by accident."""
    if path.exists() and not path.is_dir():
        raise OutputDirError(f"--out {path}: exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise OutputDirError(f"--out {path}: directory is not empty; pick another or pass --force to overwrite")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputDirError(f"--out {path}: cannot create the directory ({exc.strerror})") from None
    return path


def trades_frame(result: BacktestResult) -> pd.DataFrame:
    """The run's round trips, oldest first, plus the position still open at the end
    (``status`` ``open``, marked at the last close without an exit fee, as equity is)."""
    rows = []
    for t in result.trades:
        rows.append(_trade_row(result, "closed", t.side, t.entry_time_ms, t.exit_time_ms, t.entry_price, t.exit_price,
                               t.qty, t.gross_pnl, t.fees, t.funding, t.net_pnl))
    p = result.open_position
    if p is not None:
        last = int(result.times_ms[-1])
        rows.append(_trade_row(result, "open", p.side, p.entry_time_ms, last, p.entry_price, p.mark_price, p.qty,
                               p.unrealized_pnl, p.entry_fee, p.funding, p.unrealized_pnl - p.entry_fee - p.funding))
    return pd.DataFrame(rows, columns=list(TRADE_COLUMNS))


def _trade_row(result: BacktestResult, status: str, side: int, entry_ms: int, exit_ms: int, entry_price: float,
               exit_price: float, qty: float, gross: float, fees: float, funding: float, net: float) -> dict[str, Any]:
    return {
        "strategy": result.strategy, "status": status, "side": "long" if side == Side.LONG else "short",
        "entry_time": _iso(entry_ms), "exit_time": _iso(exit_ms), "entry_price": entry_price,
        "exit_price": exit_price, "qty": qty, "gross_pnl": gross, "fees": fees, "funding": funding, "net_pnl": net,
        "return_pct": 100.0 * net / (qty * entry_price), "holding_candles": (exit_ms - entry_ms) // result.interval_ms,
    }


def result_summary(result: BacktestResult) -> dict[str, Any]:
    """Metrics plus what the metrics leave out: the open position and an early end (when
    the env ended the run, after how many steps, and why; ``null`` when it ran to the end)."""
    p, end = result.open_position, result.ended_early
    return result.metrics.to_dict() | {
        "open_position": None if p is None else {
            "side": "long" if p.side == Side.LONG else "short", "entry_time": _iso(p.entry_time_ms),
            "entry_price": p.entry_price, "unrealized_pnl": p.unrealized_pnl,
        },
        "ended_early": None if end is None else {"time": _iso(end.time_ms), "steps": end.steps, "reason": end.reason},
    }


def span_summary(result: BacktestResult, source: str) -> dict[str, Any]:
    """The candles ``result`` ran on."""
    return {
        "source": source,
        "first_decision": _iso(int(result.times_ms[0])),
        "last_mark": _iso(int(result.times_ms[-1])),
        "n_steps": len(result.actions),
        "interval_ms": result.interval_ms,
        "funding": result.perpetual,
    }


def write_backtest(
    out_dir: Path, main: BacktestResult, others: Sequence[BacktestResult], *, source: str, spec: EvaluationSpec
) -> dict[str, Path]:
    """Write ``metrics.json``, ``trades.csv`` and ``report.png``; returns their paths."""
    paths = {"metrics": out_dir / "metrics.json", "trades": out_dir / "trades.csv", "report": out_dir / "report.png"}
    env = spec.env
    longest = max((main, *others), key=lambda r: len(r.times_ms))  # runs the env ended early are shorter
    document = {
        "strategy": main.strategy,
        "candles": span_summary(longest, source),
        **spec.describe(),
        "results": {r.strategy: result_summary(r) for r in (main, *others)},
    }
    _write_json(paths["metrics"], document)
    trades_frame(main).to_csv(paths["trades"], index=False)
    start, end = (format_ms(longest.times_ms[i]) for i in (0, -1))
    title = f"{Path(source).name}: {start} to {end} UTC, {len(longest.actions):,} decisions, " \
            f"commission {env.commission:g}, slippage {env.slippage_bps:g} bps, " \
            f"{'risk guard on' if spec.risk else 'no risk guard'}"
    plot_backtest(main, others, paths["report"], title=title)
    return paths


def write_walk_forward(out_dir: Path, result: WalkForwardResult, *, source: str,
                       settings: Mapping[str, Any]) -> dict[str, Path]:
    """Write ``walk_forward.json``, ``folds.csv`` and ``walk_forward.png``."""
    paths = {"summary": out_dir / "walk_forward.json", "folds": out_dir / "folds.csv",
             "report": out_dir / "walk_forward.png"}
    times = result.candles["open_time_ms"].to_numpy()
    folds = []
    rows = []
    for f in result.folds:
        fold = f.fold
        folds.append({
            "fold": fold.index + 1,
            "train": {"start": _iso(int(times[fold.train_start])), "end": _iso(int(times[fold.train_end - 1])),
                      "n_candles": fold.train_end - fold.train_start},
            "test": {"start": _iso(int(times[fold.train_end])), "end": _iso(int(times[fold.test_end - 1])),
                     "n_candles": fold.test_end - fold.train_end},
            "model": str(f.model_path) if len(f.models) == 1 else {name: str(path) for name, path in f.models.items()},
            "results": {name: result_summary(r) for name, r in f.results.items()},
        })
        for name, r in f.results.items():
            rows.append({"fold": fold.index + 1, "strategy": name, "test_start": _iso(int(times[fold.train_end]))}
                        | r.metrics.to_dict())
    _write_json(paths["summary"], {
        "candles": {"source": source, "n_candles": len(times), "first": _iso(int(times[0])),
                    "last": _iso(int(times[-1]))},
        **result.spec.describe(),
        "walk_forward": dict(settings),
        "folds": folds,
        "aggregate": result.aggregate(),
        "seeds": result.seed_summary(),
    })
    pd.DataFrame(rows).to_csv(paths["folds"], index=False)
    plot_walk_forward(
        times, result.candles["close"].to_numpy(), [f.results for f in result.folds], result.strategy, paths["report"],
        title=f"Walk-forward on {Path(source).name}: {len(result.folds)} folds, "
              f"train {settings.get('train_candles'):,} / test {settings.get('test_candles'):,} candles" + (
                  f", PPO {settings['total_timesteps']:,} timesteps per fold" if "total_timesteps" in settings else ""),
    )
    return paths


def write_signal(out_dir: Path, document: Mapping[str, Any]) -> dict[str, Path]:
    """Write ``signal.json`` (:func:`trainer.signal_check.signal_document`)."""
    paths = {"signal": out_dir / "signal.json"}
    _write_json(paths["signal"], document)
    return paths


def _write_json(path: Path, document: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2, allow_nan=False, default=str) + "\n", encoding="utf-8")


def _iso(ms: int) -> str:
    return pd.Timestamp(int(ms), unit="ms").isoformat()

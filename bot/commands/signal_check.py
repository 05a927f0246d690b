"""``shadow evaluate --signal``: is there anything to learn before spending compute on RL?

Reads the candles (one file, or ``--symbols`` from ``--data`` files or the candle cache as
``shadow train --symbols`` does), checks every input before fitting anything, runs
:mod:`trainer.evaluation.signal_check`, prints a table per interval and a verdict line per series, and
writes ``signal.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from bot.commands.common import SAMPLE_CANDLES, console, load_candle_file
from config import Settings, UserError

if TYPE_CHECKING:
    from trainer.evaluation.signal_check import IntervalResult, SignalSpec

DEFAULT_INTERVALS = "1m,5m,15m,1h"
DAY_MS = 86_400_000


@dataclass(frozen=True)
class SignalArgs:
    """The ``--signal`` flags as given (None: not given)."""

    data: Path | None
    symbol: str | None
    symbols: str | None
    intervals: str | None
    horizons: str | None
    folds: int | None
    lookback: int | None
    model: str | None
    repair: bool


def run_signal_check(args: SignalArgs, settings: Settings, out: Path, force: bool) -> None:
    """Check, measure, print and write ``signal.json`` to ``out``; nothing is written when an
    input is refused."""
    from trainer.evaluation.outputs import prepare_out_dir, write_signal
    from trainer.evaluation.signal_check import (
        DEFAULT_FOLDS,
        DEFAULT_HORIZONS,
        SignalSpec,
        check_signal,
        plan_signal,
        signal_document,
    )

    spec = SignalSpec(
        horizons=_horizons(args.horizons) if args.horizons is not None else DEFAULT_HORIZONS,
        folds=args.folds if args.folds is not None else DEFAULT_FOLDS,
        lookback=args.lookback if args.lookback is not None else 1,
        model=args.model or "ridge",
    )
    intervals = _intervals(args.intervals or DEFAULT_INTERVALS)
    sources = _load_series(args, settings)
    plans = [plan_signal(frame, intervals, spec, label=label) for label, (frame, _) in sources.items()]
    out_dir = prepare_out_dir(out, force)
    results = [r for plan in plans for r in check_signal(plan, settings.env, progress=console.print)]
    for name in intervals:
        in_interval = [r for r in results if r.interval == name]
        console.print(_table(in_interval, spec))
        for r in in_interval:
            console.print(r.verdict_line(), highlight=False, soft_wrap=True)
    paths = write_signal(out_dir, signal_document(results, spec, settings.env,
                                                  {label: source for label, (_, source) in sources.items()}))
    for kind, path in paths.items():
        console.print(f"{kind}: {path}")


def _horizons(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(token) for token in text.split(","))
    except ValueError:
        raise UserError(f"--horizons {text!r}: give whole numbers of candles, comma-separated (e.g. 1,5,15)") from None
    if min(values) < 1:
        raise UserError(f"--horizons {text!r}: a horizon is at least 1 candle")
    return tuple(dict.fromkeys(values))  # each once, in the order given


def _intervals(text: str) -> dict[str, int]:
    """``"1m,1h"`` -> ``{"1m": 60000, "1h": 3600000}``; intervals must fit a day evenly, as
    the resampled candles are aligned to midnight UTC."""
    from bot.bybit.markets import interval

    out = {}
    for name in (token.strip() for token in text.split(",")):
        try:
            ms = interval(name).grid.step_ms  # None for calendar months
        except ValueError as exc:
            raise UserError(f"--interval: {exc}") from None
        if ms is None or DAY_MS % ms != 0:
            raise UserError(f"--interval {name}: the signal check resamples into intervals that divide a day "
                            "(1m .. 1d)")
        out[name] = ms
    return out


def _load_series(args: SignalArgs, settings: Settings) -> dict[str, tuple[Any, str]]:
    """label -> (validated candles, where they came from)."""
    if args.symbols is None:
        path = args.data or SAMPLE_CANDLES
        label = args.symbol or path.name.split(".")[0]
        return {label: (load_candle_file(path, args.repair), str(path))}
    if args.symbol is not None:
        raise UserError("give --symbol (a name for one --data file) or --symbols, not both")
    if args.repair:
        raise UserError("--repair works on one --data file; files of --symbols are read as shadow train reads them")
    from trainer.data.history import Market
    from trainer.training.multi_symbol import parse_symbols, symbol_settings
    from trainer.training.single_symbol import load_training_candles

    settings = settings.model_copy(update={"train": settings.train.model_copy(update={"data": args.data})})
    out = {}
    for symbol in parse_symbols(args.symbols, settings.exchange.category):
        one = symbol_settings(settings, symbol)
        out[Market(symbol, one.train.timeframe).market_id] = load_training_candles(one.train, one, None)
    return out


def _table(results: list[IntervalResult], spec: SignalSpec) -> Table:
    """One interval: a row per series and horizon; the row each verdict speaks of in bold."""
    from env.features import N_FEATURES

    interval = results[0].interval
    table = Table(title=f"Is there anything to learn at {interval}? {spec.model} on {N_FEATURES * spec.lookback} "
                        f"features, {spec.folds} walk-forward folds, out of sample; bps per trade",
                  title_justify="left")
    for column in ("series", "ahead", "test rows", "IC mean", "IC range", "hit rate", "edge", "timing", "long only",
                   "round trip"):
        table.add_column(column, justify="left" if column == "series" else "right")
    for r in results:
        for h in r.horizons:
            table.add_row(
                r.label, f"{h.horizon} x {interval}", f"{h.n_test:,}", f"{h.ic_mean:+.3f}",
                f"{min(h.ics):+.3f} .. {max(h.ics):+.3f}", "n/a" if h.hit_rate is None else f"{100 * h.hit_rate:.1f}%",
                f"{h.edge_bps:+.2f}", f"{h.timing_bps:+.2f}", f"{h.long_bps:+.2f}", f"{r.cost_bps:.2f}",
                style="bold cyan" if h is r.best else None,
            )
    return table

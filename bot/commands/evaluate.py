"""``shadow backtest`` and ``shadow evaluate``: how would a strategy have done?"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.table import Table

from bot.commands.common import SAMPLE_CANDLES, console, load_candle_file, repair_policy
from config import Settings, UserError
from config.cli import ConfigOption, command_settings, setting_option

CandlesOption = Annotated[
    Path | None, typer.Option("--candles", "--data", show_default=False,
                              help="candle CSV, plain or .gz (default: the bundled "
                                   "data/sample/btcusdt_1m_2023-03.csv.gz); with --signal --symbols, a path "
                                   "with {symbol} in it")
]
OutOption = Annotated[
    Path | None, typer.Option("--out", help="output directory (default: reports/<command>-<UTC time>)")
]
ForceOption = Annotated[bool, typer.Option("--force", help="write into a non-empty --out directory")]
RepairOption = Annotated[bool, typer.Option(
    "--repair", help="repair bad candles (fill gaps, drop bad rows) instead of failing")]
RiskOption = Annotated[bool | None, setting_option(
    "evaluation.risk_guard", "--risk/--no-risk",
    help="score every strategy (baselines too) with the [risk] limits between its decisions and its fills, as the "
         "live daemon trades",
)]

_ROWS: tuple[tuple[str, str, str], ...] = (
    ("total_return", "total return", "pct"),
    ("annualized_return", "annualised return", "pct"),
    ("sharpe", "Sharpe", "num"),
    ("sortino", "Sortino", "num"),
    ("max_drawdown", "max drawdown", "frac"),
    ("calmar", "Calmar", "num"),
    ("n_trades", "trades", "int"),
    ("win_rate", "win rate", "frac"),
    ("profit_factor", "profit factor", "num"),
    ("avg_holding_hours", "avg holding (h)", "num"),
    ("exposure", "exposure", "frac"),
    ("time_long", "time long", "frac"),
    ("time_short", "time short", "frac"),
    ("net_exposure", "net exposure", "num"),
    ("buy_and_hold_return", "buy & hold (same candles)", "pct"),
    ("exposure_matched_return", "exposure-matched buy & hold", "pct"),
    ("timing", "timing (return - matched)", "pct"),
    ("fees_paid", "fees paid", "num"),
    ("funding_paid", "funding paid", "num"),
    ("fees_to_capital", "fees, % of capital", "frac"),
    ("funding_to_capital", "funding, % of capital", "frac"),
    ("turnover", "turnover (x capital)", "num"),
    ("final_equity", "final equity", "num"),
)


def backtest(
    ctx: typer.Context,
    strategy: Annotated[str | None, setting_option(
        "evaluation.strategy", "--strategy", "-s",
        help="strategy spec: ppo:PATH, sma:fast=10,slow=50, rsi:period=14, random:seed=0, buy_and_hold, flat",
    )] = None,
    candles: Annotated[
        Path | None, typer.Option("--candles", show_default=False, help="candle CSV, plain or .gz "
                                     "(default: the bundled data/sample/btcusdt_1m_2023-03.csv.gz, unless --db)")
    ] = None,
    db: Annotated[
        Path | None, typer.Option("--db", help="take the candles the daemon stored in this ledger instead of a file")
    ] = None,
    symbol: Annotated[
        str | None, typer.Option("--symbol", help="with --db: the symbol, e.g. BTCUSDT (default: the only one stored)")
    ] = None,
    interval: Annotated[
        str | None, typer.Option("--interval", help="with --db: the interval, e.g. 1m (default: the only one stored)")
    ] = None,
    start: Annotated[str | None, typer.Option("--from", help="first decision time, UTC (e.g. 2023-03-10)")] = None,
    end: Annotated[str | None, typer.Option("--to", help="end time, UTC, exclusive")] = None,
    out: OutOption = None,
    force: ForceOption = False,
    repair: RepairOption = False,
    risk: RiskOption = None,
    config: ConfigOption = None,
) -> None:
    """Backtest a strategy on a candle file or on the ledger's candles, beside buy & hold and
    flat on the same candles.

    Same env, features, fills and (with --risk) risk limits as the live daemon, for the
    strategy and the baselines alike; commission and slippage from \\[env].

    Writes metrics.json, trades.csv and report.png to --out.
    """
    settings = command_settings(ctx)
    from bot.serving import cap_torch_threads
    from env.features import warmup_prefix
    from strategies.specs import build_strategy
    from trainer.data.ranges import select_range
    from trainer.evaluation.backtest import EvaluationSpec
    from trainer.evaluation.outputs import prepare_out_dir, write_backtest

    warmup = warmup_prefix(settings.env.lookback_window)
    if db is not None:
        if candles is not None:
            raise UserError("--candles and --db are two sources of candles; give one of them")
        frame, start_index, source = _ledger_candles(db, symbol, interval, warmup, start, end, repair, settings)
    elif symbol is not None or interval is not None:
        raise UserError("--symbol and --interval choose candles in a ledger; they need --db")
    else:
        candles = candles or SAMPLE_CANDLES
        frame, start_index = select_range(load_candle_file(candles, repair), warmup, start, end)
        source = str(candles)
    main = build_strategy(settings.evaluation.strategy, lookback_window=settings.env.lookback_window)
    cap_torch_threads(1)  # the daemon and the trainer share two cores
    others = _baselines(settings, exclude=main.name)
    out_dir = prepare_out_dir(out or _default_out("backtest"), force)
    spec = EvaluationSpec.from_settings(settings)
    results = spec.compare([main, *others], frame, start_index)
    paths = write_backtest(out_dir, results[0], results[1:], source=source, spec=spec)
    console.print(_metrics_table(results, f"{main.name} on {Path(source).name}"))
    for line in _early_ends(results):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    for kind, path in paths.items():
        console.print(f"{kind}: {path}")


def evaluate(
    ctx: typer.Context,
    walk_forward: Annotated[
        bool, typer.Option("--walk-forward/--single-split",
                           help="rolling folds (default) or one split: train, then test on the last slice"),
    ] = True,
    signal: Annotated[
        bool, typer.Option("--signal", help="instead of training PPO: how much of the next candles' return do the "
                           "policy's features predict, out of sample, against a round trip's cost? Writes "
                           "signal.json"),
    ] = False,
    candles: CandlesOption = None,
    train_candles: Annotated[int | None, setting_option("evaluation.train_candles")] = None,
    test_candles: Annotated[int | None, setting_option("evaluation.test_candles")] = None,
    step_candles: Annotated[int | None, setting_option("evaluation.step_candles")] = None,
    folds: Annotated[int | None, setting_option(
        "evaluation.max_folds", "--folds",
        help="walk-forward: stop after this many folds (default: all that fit); --signal: this many, default 5",
    )] = None,
    timesteps: Annotated[int | None, setting_option("evaluation.total_timesteps", "--timesteps")] = None,
    seed: Annotated[int | None, setting_option("evaluation.seed")] = None,
    seeds: Annotated[int | None, setting_option("evaluation.seeds")] = None,
    profile: Annotated[str | None, setting_option("profile")] = None,
    symbol: Annotated[
        str | None, typer.Option(help="symbol recorded in each model's metadata (default: \\[train] symbol); "
                                 "--signal: the name of the --data file's series")
    ] = None,
    symbols: Annotated[
        str | None, typer.Option(help="--signal: check these symbols (BTCUSDT,ETHUSDT), each from --data with "
                                 "{symbol} in its path or from Bybit through the candle cache")
    ] = None,
    interval: Annotated[
        str | None, typer.Option("--interval", help="--signal: candle intervals, resampled from the data "
                                 "(default: 1m,5m,15m,1h)")
    ] = None,
    horizons: Annotated[
        str | None, typer.Option(help="--signal: candles ahead whose return is predicted (default: 1,5,15)")
    ] = None,
    lookback: Annotated[
        int | None, typer.Option(help="--signal: feature rows per sample (default: 1; \\[env] lookback_window "
                                 "is the policy's whole window)")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="--signal: ridge (linear) or gbm (gradient-boosted trees) (default: ridge)")
    ] = None,
    out: OutOption = None,
    force: ForceOption = False,
    repair: RepairOption = False,
    risk: RiskOption = None,
    config: ConfigOption = None,
) -> None:
    """Train PPO on a rolling window, test on the next slice, repeat; compare with baselines.

    Every test decision is made by a model that never saw that candle.

    Writes each fold's model (with metadata), walk_forward.json, folds.csv and walk_forward.png to --out.

    With --signal, no PPO: a simple model (scikit-learn) predicts the next candles' return from
    the policy's features on the same kind of folds, per interval, against a round trip's cost.
    """
    ppo_flags = {"--train-candles": train_candles, "--test-candles": test_candles, "--step-candles": step_candles,
                 "--timesteps": timesteps, "--seed": seed, "--seeds": seeds, "--profile": profile,
                 "--single-split": None if walk_forward else True}
    signal_flags = {"--symbols": symbols, "--interval": interval, "--horizons": horizons, "--lookback": lookback,
                    "--model": model}
    given = [flag for flag, value in (ppo_flags if signal else signal_flags).items() if value is not None]
    if given:
        raise UserError(f"{given[0]} is a PPO walk-forward option; --signal does not train PPO" if signal
                        else f"{given[0]} is an option of --signal")
    if signal:
        from bot.commands.signal_check import SignalArgs, run_signal_check

        args = SignalArgs(candles, symbol, symbols, interval, horizons, folds, lookback, model, repair)
        run_signal_check(args, command_settings(ctx), out or _default_out("signal"), force)
        return
    from env.features import warmup_prefix
    from strategies.ppo import load_ppo_strategy
    from trainer.evaluation.backtest import EvaluationSpec
    from trainer.evaluation.outputs import prepare_out_dir, write_walk_forward
    from trainer.evaluation.walk_forward import make_folds
    from trainer.evaluation.walk_forward import walk_forward as run_walk_forward
    from trainer.training.fold_trainer import PPOTrainer

    settings = command_settings(ctx)
    ev = settings.evaluation
    candles = candles or SAMPLE_CANDLES
    frame = load_candle_file(candles, repair)
    if not walk_forward:  # one fold: the last test slice and the training window before it
        frame = frame.iloc[max(0, len(frame) - ev.train_candles - ev.test_candles - 1):].reset_index(drop=True)
    lookback = settings.env.lookback_window
    max_folds = ev.max_folds if walk_forward else 1
    baselines = _baselines(settings, exclude="")
    # the folds must fit (WalkForwardError otherwise) before --out is made
    make_folds(len(frame), train=ev.train_candles, test=ev.test_candles, step=ev.step_candles, max_folds=max_folds,
               warmup=warmup_prefix(lookback))
    out_dir = prepare_out_dir(out or _default_out("walk_forward" if walk_forward else "evaluate"), force)
    result = run_walk_forward(
        frame,
        train_fn=PPOTrainer(ev.total_timesteps, settings.train, symbol=symbol),
        spec=EvaluationSpec.from_settings(settings),
        baselines=baselines,
        load_model=lambda path: load_ppo_strategy(path, lookback_window=lookback),
        train=ev.train_candles,
        test=ev.test_candles,
        step=ev.step_candles,
        max_folds=max_folds,
        seed=ev.seed,
        seeds=ev.seeds,
        out_dir=out_dir,
        progress=console.print,
    )
    paths = write_walk_forward(out_dir, result, source=str(candles),
                               settings=ev.model_dump() | {"profile": settings.profile})
    console.print(_aggregate_table(result.aggregate(), result.models))
    if (spread := result.seed_summary()) is not None:
        console.print(_seed_line(spread))
    for f in result.folds:
        for line in _early_ends(list(f.results.values())):
            console.print(f"fold {f.fold.index + 1}: {line}", highlight=False, markup=False, soft_wrap=True)
    for kind, path in paths.items():
        console.print(f"{kind}: {path}")


def _ledger_candles(db: Path, symbol: str | None, interval: str | None, warmup: int, start: str | None,
                    end: str | None, repair: bool, settings: Settings) -> tuple[Any, int, str]:
    """The backtest frame, first decision index and source label from a ledger's candles."""
    from contextlib import closing

    from state.database import connect_reader
    from trainer.data.ledger_source import ledger_backtest_candles, pick_series

    with closing(connect_reader(db, settings.ledger.lock_timeout_s)) as conn:
        series = pick_series(conn, db, symbol, interval)
        frame, start_index = ledger_backtest_candles(conn, db, series, warmup, start, end, repair_policy(repair))
    return frame, start_index, f"{db} {series.symbol} {series.interval}"


def _baselines(settings: Settings, exclude: str) -> list[Any]:
    """buy_and_hold, flat, then the configured extra baselines; no duplicates, not the
    strategy under test."""
    from strategies.specs import build_strategy
    from trainer.evaluation.backtest import BASELINES

    built: dict[str, Any] = {}
    for spec in (*BASELINES, *settings.evaluation.baselines):
        strategy = build_strategy(spec, lookback_window=settings.env.lookback_window)
        if strategy.name != exclude:
            built.setdefault(strategy.name, strategy)
    return list(built.values())


def _default_out(command: str) -> Path:
    return Path("reports") / f"{command}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"


def _metrics_table(results: list[Any], title: str) -> Table:
    from env.candles import format_ms
    from strategies.base import short_name

    table = Table(title=title, title_justify="left")
    table.add_column("metric", overflow="fold")
    for i, result in enumerate(results):
        header = short_name(result.strategy).replace(":", ":\n", 1).replace(",", ",\n")  # one parameter a line
        table.add_column(header, justify="right", overflow="fold", style="bold cyan" if i == 0 else None)
    for key, label, kind in _ROWS:
        table.add_row(label, *(_fmt(getattr(r.metrics, key), kind) for r in results))
    table.add_row("ended early", *(format_ms(r.ended_early.time_ms) if r.ended_early else "-" for r in results))
    return table


def _early_ends(results: list[Any]) -> list[str]:
    """One line per run the env ended before the data did: when, after how many steps, why."""
    from env.candles import format_ms
    from strategies.base import short_name

    return [f"{short_name(r.strategy)} ended early at {format_ms(r.ended_early.time_ms)} after "
            f"{r.ended_early.steps:,} of {max(len(x.actions) for x in results):,} steps: {r.ended_early.reason}"
            for r in results if r.ended_early is not None]


_RETURN_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("chained_return", "chained return", "pct"), ("mean_fold_return", "mean fold", "pct"),
    ("median_fold_return", "median fold", "pct"), ("mean_sharpe", "mean Sharpe", "num"),
    ("worst_max_drawdown", "worst drawdown", "frac"), ("n_trades", "trades", "int"), ("fees_paid", "fees", "num"),
    ("funding_paid", "funding", "num"),
)
_SKILL_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("mean_fold_timing", "mean timing", "pct"), ("net_exposure", "net exposure", "num"),
    ("time_long", "long", "frac"), ("time_short", "short", "frac"), ("fees_to_capital", "fees, % capital", "frac"),
    ("funding_to_capital", "funding, % capital", "frac"),
    ("turnover", "turnover", "num"), ("blew_up_folds", "blow-ups", "int"),
)


def _aggregate_table(aggregate: dict[str, dict[str, Any]], models: list[str]) -> Group:
    """Two tables: returns (with the folds PPO beat each strategy on), then the skill figures."""
    returns = _table("Walk-forward, out of sample (all folds)", aggregate, models, _RETURN_COLUMNS,
                     ("folds PPO beat it", lambda a: "-" if a["folds_model_beat_it"] is None
                      else str(a["folds_model_beat_it"])))
    skill = _table("Skill: timing = return - net exposure x buy & hold (per fold, mean); fees, funding and turnover "
                   "summed over the folds", aggregate, models, _SKILL_COLUMNS)
    return Group(returns, skill)


def _table(title: str, aggregate: dict[str, dict[str, Any]], models: list[str],
           columns: tuple[tuple[str, str, str], ...], extra: tuple[str, Any] | None = None) -> Table:
    from strategies.base import short_name

    table = Table(title=title, title_justify="left")
    table.add_column("strategy", overflow="fold")
    for _, label, _ in columns:
        table.add_column(label, justify="right", overflow="fold")
    if extra is not None:
        table.add_column(extra[0], justify="right", overflow="fold")
    for name, a in aggregate.items():
        cells = [_fmt(a[key], kind) for key, _, kind in columns] + ([extra[1](a)] if extra is not None else [])
        table.add_row(short_name(name), *cells, style="bold cyan" if name in models else None)
    return table


def _seed_line(spread: dict[str, Any]) -> str:
    """PPO over N seeds: mean and range of the aggregate figures."""
    def figure(key: str, label: str, kind: str) -> str:
        value = spread[key]
        return f"{label} {_fmt(value['mean'], kind)} ({_fmt(value['min'], kind)} .. {_fmt(value['max'], kind)})"

    return (f"PPO over {spread['seeds']} seeds, mean (range): " + ", ".join(figure(*c) for c in (
        ("chained_return", "chained return", "pct"), ("mean_fold_timing", "mean timing", "pct"),
        ("n_trades", "trades", "num"), ("fees_to_capital", "fees", "frac")) if spread[c[0]] is not None))


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "n/a"
    if kind == "pct":
        return f"{100 * value:+,.1f}%"
    if kind == "frac":
        return f"{100 * value:.1f}%"
    if kind == "int":
        return str(int(value))
    return f"{value:,.2f}"


def register(app: typer.Typer) -> None:
    app.command("backtest")(backtest)
    app.command("evaluate")(evaluate)

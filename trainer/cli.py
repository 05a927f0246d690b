"""The trainer's commands: ``train`` (the seed's flags) and ``fetch``.

``shadow train`` and ``python -m trainer.train_ppo`` run the same function with the same
flags. A flag left out takes its value from the ``[train]`` (or ``[env]``) settings, whose
defaults are the seed's. Flags are validated by the settings model, so a bad value fails
with a one-line error naming the setting before any work starts. torch and SB3 are
imported inside the commands, so ``shadow --help`` stays instant.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from config.cli import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    BackendOption,
    ConfigOption,
    RayAddressOption,
    WorkersOption,
    command_settings,
    run_app,
    setting_option,
)
from config.errors import UserError
from config.logs import configure_logging
from config.settings import Settings

if TYPE_CHECKING:
    from trainer.jobs.backends import Backend as JobBackend
    from trainer.jobs.board import Board

T = TypeVar("T")
TRAINING_LOG = Path("ppo_training.log")
"""The seed's log file, in the working directory."""

SymbolOption = Annotated[str | None, setting_option("train.symbol")]
TimeframeOption = Annotated[str | None, setting_option("train.timeframe")]
NumCandlesOption = Annotated[int | None, setting_option("train.num_candles")]


def log_training() -> None:
    """Log to stderr and to ``ppo_training.log`` (created with its first line, as the seed's)."""
    configure_logging("INFO", log_file=TRAINING_LOG, max_mb=0)


def train_command(
    ctx: typer.Context,
    config: ConfigOption = None,
    symbol: SymbolOption = None,
    timeframe: TimeframeOption = None,
    num_candles: NumCandlesOption = None,
    initial_balance: Annotated[float | None, setting_option("env.initial_balance")] = None,
    total_timesteps: Annotated[int | None, setting_option("train.total_timesteps")] = None,
    n_envs: Annotated[int | None, setting_option("train.n_envs")] = None,
    learning_rate: Annotated[float | None, setting_option("train.learning_rate")] = None,
    batch_size: Annotated[int | None, setting_option("train.batch_size")] = None,
    n_epochs: Annotated[int | None, setting_option("train.n_epochs")] = None,
    save_path: Annotated[Path | None, setting_option("train.save_path")] = None,
    log_dir: Annotated[Path | None, setting_option("train.log_dir")] = None,
    data: Annotated[Path | None, setting_option("train.data")] = None,
    seed: Annotated[int | None, setting_option("train.seed")] = None,
    resume: Annotated[Path | None, setting_option("train.resume")] = None,
    device: Annotated[str | None, setting_option("train.device")] = None,
    vec_env: Annotated[str | None, setting_option("train.vec_env")] = None,
    n_steps: Annotated[int | None, setting_option("train.n_steps")] = None,
    episode_length: Annotated[int | None, setting_option("train.episode_length")] = None,
    checkpoint_freq: Annotated[int | None, setting_option("train.checkpoint_freq")] = None,
    eval_freq: Annotated[int | None, setting_option("train.eval_freq")] = None,
    progress: Annotated[bool | None, setting_option("train.progress", "--progress/--no-progress")] = None,
    profile: Annotated[str | None, setting_option("profile")] = None,
    reward_mode: Annotated[str | None, setting_option("env.reward.mode", "--reward-mode")] = None,
    fee_multiplier: Annotated[float | None, setting_option("env.reward.fee_multiplier")] = None,
    action_mode: Annotated[str | None, setting_option("env.action_mode")] = None,
    decision_stride: Annotated[int | None, setting_option("env.decision_stride")] = None,
    seeds: Annotated[int | None, setting_option("train.seeds")] = None,
    symbols: Annotated[
        str | None, typer.Option(help="train one model per symbol, side by side: BTCUSDT,ETHUSDT (Bybit ids in the "
                                    "\\[exchange] category) or ccxt symbols; outputs under save-path/ID/, and "
                                    "--data needs {symbol} in its path")
    ] = None,
    shared: Annotated[
        bool, typer.Option("--shared", help="with --symbols: train ONE model on every symbol's candles (outputs as "
                           "for one symbol, a test file per symbol under data/ID/); --resume continues a shared "
                           "model of the same symbols")
    ] = False,
    backend: BackendOption = None,
    workers: WorkersOption = None,
    ray_address: RayAddressOption = None,
) -> None:
    """Train a PPO policy on Bybit candles (or on --data FILE), the seed's train_ppo."""
    settings = command_settings(ctx)
    if shared and symbols is None:
        raise UserError("--shared trains one model on several symbols: it needs --symbols A,B,...")
    if symbols is not None and symbol is not None:
        raise UserError("give --symbol or --symbols, not both")
    if settings.train.seeds > 1 and (symbols is not None or settings.train.resume is not None):
        raise UserError(f"--seeds {settings.train.seeds} trains several fresh models of one symbol; it cannot be "
                        "combined with " + ("--symbols" if symbols is not None else "--resume"))
    log_training()
    if settings.train.seeds > 1:
        _train_seeds(settings)
        return
    if symbols is not None:
        if shared:
            _train_shared(settings, symbols)
        else:
            _train_symbols(settings, symbols)
        return
    from trainer.training.single_symbol import train

    try:
        result = train(settings)
    except KeyboardInterrupt:
        logging.getLogger(__name__).warning("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    typer.echo(f"final model: {result.final_model} ({result.num_timesteps} steps)")


def _train_symbols(settings: Settings, symbols: str) -> None:
    """``--symbols``: one model per symbol on the chosen backend, with a live table."""
    from trainer.evaluation.metrics import describe_skill
    from trainer.training.multi_symbol import check_symbols, parse_symbols, train_symbols

    per_symbol = check_symbols(settings, parse_symbols(symbols, settings.exchange.category))
    outcomes = _on_backend(
        settings, lambda runner: f"shadow train: {len(per_symbol)} symbols on {runner.name} "
                                 f"({runner.workers} at a time)",
        "validation return", lambda runner, board: train_symbols(per_symbol, runner, board=board))
    failed = [symbol for symbol, outcome in outcomes.items() if not outcome.ok]
    for symbol, outcome in outcomes.items():
        if outcome.ok:
            typer.echo(f"{symbol}: {outcome.result.num_timesteps} steps, validation "
                       f"{describe_skill(outcome.result.validation)}")
        else:
            typer.echo(f"{symbol}: FAILED: {outcome.error_line}", err=True)
    if failed:
        raise typer.Exit(EXIT_FAILED)


def _train_shared(settings: Settings, symbols: str) -> None:
    """``--symbols --shared``: one model on every symbol, as one job on the backend, with a live table."""
    from trainer.evaluation.metrics import describe_skill
    from trainer.training.multi_symbol import parse_symbols
    from trainer.training.shared_model import prepare_shared, run_shared
    from trainer.training.single_symbol import FINAL_MODEL_NAME

    job = prepare_shared(settings, parse_symbols(symbols, settings.exchange.category))
    outcome = _on_backend(
        settings, lambda runner: f"shadow train: one model on {len(job.symbols)} symbols on {runner.name}",
        "mean validation return", lambda runner, board: run_shared(job, runner, board))
    if not outcome.ok:
        typer.echo(f"{outcome.key}: FAILED: {outcome.error_line}", err=True)
        raise typer.Exit(EXIT_FAILED)
    result = outcome.result
    typer.echo(f"{outcome.key}: {result.num_timesteps} steps, mean validation return "
               f"{100 * result.validation_return:+.2f}%")
    for market, metrics in result.validations.items():
        typer.echo(f"  {market}: validation {describe_skill(metrics)}")
    typer.echo(f"final model: {settings.train.save_path / FINAL_MODEL_NAME} ({result.num_timesteps} steps)")


def _train_seeds(settings: Settings) -> None:
    """``--seeds N``: N models on the chosen backend, with a live table; the best by validation
    return becomes the final model; every seed's figures and the spread are printed."""
    from trainer.evaluation.metrics import describe_skill
    from trainer.training.seeds import train_seeds

    args = settings.train
    result = _on_backend(
        settings, lambda runner: f"shadow train: {args.seeds} seeds on {runner.name} ({runner.workers} at a time)",
        "validation return", lambda runner, board: train_seeds(settings, runner, board=board))
    for seed, run in sorted(result.runs.items()):
        flips = run.diagnostics.get("flip_rate")
        typer.echo(f"seed {seed}: validation {describe_skill(run.validation)}"
                   + ("" if flips is None else f", argmax flips {100 * flips:.1f}%")
                   + ("  <- selected" if seed == result.selected else ""))
    for seed, error in sorted(result.failed.items()):
        typer.echo(f"seed {seed}: FAILED: {error}", err=True)
    spread = result.spread()
    parts = [f"{label} {_spread_text(spread[name], form)}" for name, label, form in (
        ("total_return", "return", "{:+.2%}"), ("timing", "timing", "{:+.2%}"), ("n_trades", "trades", "{:.1f}"),
        ("fees_to_capital", "fees", "{:.2%}"), ("flip_rate", "argmax flips", "{:.1%}")) if spread[name]]
    typer.echo(f"over {len(result.runs)} seeds, mean (range): " + ", ".join(parts))
    if result.final_model is not None:
        typer.echo(f"final model: {result.final_model} (seed {result.selected}, the best validation return); "
                   f"every seed's figures: {result.report}")
    if result.failed:
        raise typer.Exit(EXIT_FAILED)


def _spread_text(values: dict[str, float] | None, form: str) -> str:
    """``mean (min .. max)`` in ``form`` (a format string such as ``"{:+.2%}"``)."""
    if values is None:
        return "n/a"
    return f"{form.format(values['mean'])} ({form.format(values['min'])} .. {form.format(values['max'])})"


def _on_backend(settings: Settings, title: Callable[[JobBackend], str], value_label: str,
                run: Callable[[JobBackend, Board], T]) -> T:
    """``run`` on the backend ``[compute]`` names, with the live table of its jobs on stderr;
    Ctrl-C exits with 130 (the running jobs are stopped)."""
    from trainer.jobs.backends import make_backend
    from trainer.jobs.board import Board, live

    runner = make_backend(settings.compute, settings.train.torch_threads)
    board = Board(title(runner), value_label=value_label)
    try:
        with live(board, settings.train.progress):
            return run(runner, board)
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        runner.close()


def fetch_command(
    ctx: typer.Context,
    config: ConfigOption = None, symbol: SymbolOption = None, timeframe: TimeframeOption = None,
    num_candles: NumCandlesOption = None,
) -> None:
    """Fetch the latest closed candles from Bybit into the local cache (only what is missing),
    with a linear perpetual's funding history beside them."""
    settings = command_settings(ctx)
    log_training()
    from env.candles import format_ms
    from trainer.data.bybit_public import PublicBybit, bybit_exchange
    from trainer.data.funding_history import funding_cache_file, with_funding
    from trainer.data.history import Market, load_history

    args = settings.train
    market = Market(args.symbol, args.timeframe)
    exchange: PublicBybit = bybit_exchange(settings.exchange.rest_url, market.category)
    try:
        candles = load_history(market, args.num_candles, exchange=exchange, cache_dir=args.cache_dir)
        candles = with_funding(candles, market, exchange=exchange, cache_dir=args.cache_dir)
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
    times = candles["open_time_ms"]
    typer.echo(f"{len(candles)} candles {format_ms(times.iloc[0])} .. {format_ms(times.iloc[-1])} "
               f"in {market.cache_file(args.cache_dir)}")
    if market.category == "linear":
        rates = candles["funding_rate"]
        typer.echo(f"{int((rates != 0).sum())} funding settlements over them (net rate {rates.sum():+.6f}) "
                   f"in {funding_cache_file(market, args.cache_dir)}")


def run_train_ppo(argv: list[str] | None = None) -> None:
    """``python -m trainer.train_ppo``: the train command alone, user errors as one line."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(train_command)
    run_app(app, argv, prog_name="python -m trainer.train_ppo")

"""One training run on one symbol: what the seed's ``python -m app.ml.train_ppo`` did.

``python -m trainer.train_ppo`` and ``shadow train`` run :func:`train`; ``--symbols`` and
``--shared`` (:mod:`trainer.training.multi_symbol`, :mod:`trainer.training.shared_model`) and
``shadow tune`` reuse its checks and candle loading.

Reads top to bottom: arguments (``[train]`` settings, one field per flag), checks that fail
before any work, data and split, then :func:`trainer.training.fit.fit` (seeding, envs, model,
callbacks, ``learn``, final save: the routine walk-forward folds and tuning trials share).
Outputs (paths from the flags)::

    {save_path}/checkpoints/ppo_model_{N}_steps.zip   every checkpoint_freq steps (+ on Ctrl-C)
    {save_path}/best/best_model.zip                   best mean reward on the validation slice
    {save_path}/ppo_crypto_model_final.zip            after the last step
    {log_dir}/tensorboard/PPO_{run}/                  TensorBoard (continued by --resume)
    {log_dir}/eval/evaluations.npz                    every validation evaluation
    {log_dir}/env_{i}/monitor.csv                     per training env episodes (appended by --resume)
    data/test_data.csv                                the test slice with its warm-up prefix
    ppo_training.log                                  the log (set up by the command line)

Every zip has its metadata beside it (``X.meta.json``, :mod:`strategies.model_metadata`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pandas as pd

from config.errors import UserError
from config.settings import Settings, TrainSettings
from env.candles import CandleDataError, candles_to_seed_csv, format_ms, load_candles, resample_candles
from env.features import warmup_prefix
from env.intervals import infer_grid
from strategies.model_metadata import SHARED_SEPARATOR, ModelMetadata, check_compatible, load_metadata
from trainer.data.bybit_public import bybit_exchange
from trainer.data.funding_history import FundingSource, with_funding
from trainer.data.history import Market, OhlcvSource, load_history
from trainer.data.split import ChronoSplit, chronological_split, min_candles
from trainer.training.fit import fit, resolve_device

log = logging.getLogger(__name__)

FINAL_MODEL_NAME = "ppo_crypto_model_final.zip"


class TrainArgsError(UserError):
    """A flag or setting that makes training impossible (checked before any work)."""


@dataclass(frozen=True, slots=True)
class TrainResult:
    """What a run produced. ``final_model`` is None when Ctrl-C stopped it early."""

    final_model: Path | None
    last_checkpoint: Path | None
    num_timesteps: int
    interrupted: bool
    split: ChronoSplit


def train(
    settings: Settings, *, exchange: OhlcvSource | None = None, candles: tuple[pd.DataFrame, str] | None = None
) -> TrainResult:
    """Run one training (or ``--resume``) as configured; see the module docstring.

    Args:
        settings: validated settings; ``settings.train`` holds the flags.
        exchange: candle source for a run without ``--data`` (default: ccxt Bybit at
            ``settings.exchange.rest_url``).
        candles: ``(frame, source name)`` already loaded by :func:`load_training_candles`
            (``shadow train --symbols`` loads on the driver and trains on a worker).

    Raises:
        UserError: a bad flag, data file or checkpoint, before any training starts.
    """
    check_train_args(settings)
    args = settings.train
    frame, source = candles or load_training_candles(args, settings, exchange)
    split = split_candles(frame, settings, source)
    write_test_slice(split, settings)

    # ALGO LOGIC: the shared training routine, with every output of the seed's script.
    result = fit(
        split.train.frame, split.validation.frame, settings, args.save_path, seed=args.seed, symbol=args.symbol,
        timeframe=args.timeframe, warm_start=args.resume, model_name=FINAL_MODEL_NAME, checkpoints=True,
        log_dir=args.log_dir, interruptible=True,
        extra={"data_source": source, "split": split.ranges(),
               "resumed_from": str(args.resume) if args.resume else None},
    )
    if result.interrupted:
        log.warning("interrupted at step %d; continue with --resume %s", result.num_timesteps, result.model_path)
        return TrainResult(None, result.model_path, result.num_timesteps, True, split)
    log.info("final model (%d steps) saved: %s", result.num_timesteps, result.model_path)
    return TrainResult(result.model_path, _latest_checkpoint(args.save_path / "checkpoints"), result.num_timesteps,
                       False, split)


def check_train_args(settings: Settings) -> None:
    """Everything a flag can get wrong fails here, before data or training."""
    args, prefix = settings.train, warmup_prefix(settings.env.lookback_window)
    resolve_device(args.device)
    if args.resume is not None:
        meta = check_resume(args.resume, settings)
        if meta.shared:
            ids = SHARED_SEPARATOR.join(meta.market_ids())
            raise TrainArgsError(f"--resume {args.resume}: a shared model of {ids}; continue it with "
                                 f"--symbols {ids} --shared --resume {args.resume}")
    if args.data is not None and args.data.resolve() == args.test_data_path.resolve():
        raise TrainArgsError(f"--data {args.data} is where the test slice is written; copy it elsewhere first")
    need = min_candles(prefix, args.validation_fraction, args.test_fraction)
    if args.num_candles < need:
        raise TrainArgsError(
            f"--num-candles {args.num_candles} is too few: the split needs at least {need} "
            f"({prefix} warm-up/lookback candles plus train/validation/test slices)"
        )


def check_resume(checkpoint: Path, settings: Settings) -> ModelMetadata:
    """The metadata of a checkpoint ``--resume`` can continue with this code and lookback (it
    keeps its own action mode and decision stride: :func:`trainer.training.fit.continued_settings`)."""
    if not checkpoint.is_file():
        raise TrainArgsError(f"--resume {checkpoint}: no such checkpoint file")
    meta = load_metadata(checkpoint)
    check_compatible(meta, checkpoint, settings.env.lookback_window)
    return meta


def split_candles(candles: pd.DataFrame, settings: Settings, source: str) -> ChronoSplit:
    """The chronological train / validation / test split ``[train]`` asks for."""
    args, prefix = settings.train, warmup_prefix(settings.env.lookback_window)
    return chronological_split(candles, prefix=prefix, validation_fraction=args.validation_fraction,
                               test_fraction=args.test_fraction, source=source)


def write_test_slice(split: ChronoSplit, settings: Settings) -> None:
    """Write the test slice (with its warm-up prefix) for backtesting, and log the split."""
    args = settings.train
    candles_to_seed_csv(split.test.frame, args.test_data_path)
    for part in (split.train, split.validation, split.test):
        r = part.data_range()
        log.info("%s %-10s %6d traded candles  %s .. %s",
                 args.symbol, part.name, r["n_candles"], format_ms(r["start_ms"]), format_ms(r["end_ms"]))
    log.info("test slice (with %d warm-up candles) written to %s", split.test.prefix, args.test_data_path)


def load_training_candles(
    args: TrainSettings, settings: Settings, exchange: OhlcvSource | None
) -> tuple[pd.DataFrame, str]:
    """The last ``num_candles`` candles of ``args.symbol`` from ``--data`` or from Bybit
    (through the cache; a linear perpetual's with their funding, :mod:`trainer.data.funding_history`),
    and a name for where they came from. A ``--data`` file trades with its own ``funding_rate``
    column, if it has one; a file of finer candles than ``--timeframe`` is resampled to it
    (:func:`env.candles.resample_candles`: train on 15m candles from a 1m file, funding kept)."""
    market = Market(args.symbol, args.timeframe)
    if args.data is None:
        ohlcv = exchange or bybit_exchange(settings.exchange.rest_url, market.category)
        candles = load_history(market, args.num_candles, exchange=ohlcv, cache_dir=args.cache_dir,
                               progress=args.progress)
        if market.category == "linear":
            candles = with_funding(candles, market, exchange=cast(FundingSource, ohlcv), cache_dir=args.cache_dir)
        return candles, f"bybit {market.category} {args.symbol} {args.timeframe}"
    candles = load_candles(args.data)
    found = infer_grid(candles["open_time_ms"].to_numpy())
    source = str(args.data)
    target = market.grid
    if found.nominal_ms != target.nominal_ms:
        if (target.step_ms is None or target.anchor_ms or found.step_ms is None
                or target.step_ms < found.step_ms or target.step_ms % found.step_ms):
            raise CandleDataError(
                str(args.data),
                f"candles are {found.name} apart and --timeframe {args.timeframe} is not a whole multiple of that "
                f"on the exchange's grid; pass the file's timeframe or a multiple of it",
            )
        candles = resample_candles(candles, target.step_ms, source=source)
        source = f"{args.data} resampled to {args.timeframe}"
        log.info("%s: %s candles resampled to %d %s candles", args.data, found.name, len(candles), args.timeframe)
    if len(candles) > args.num_candles:
        candles = candles.iloc[-args.num_candles:].reset_index(drop=True)
    return candles, source


def _latest_checkpoint(folder: Path) -> Path | None:
    found = sorted(folder.glob("ppo_model_*_steps.zip"), key=lambda p: int(p.stem.split("_")[2]))
    return found[-1] if found else None


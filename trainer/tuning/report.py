"""What a search leaves behind, beside its Optuna storage::

    {out_dir}/trials.csv     one row per trial of the study: state, score, its range over seeds, per-fold
                             scores, the skill figures (mean over folds and seeds), parameters, error
    {out_dir}/summary.json   data boundaries (tuning range, folds, held-out test slice), counts, best trial,
                             parameter importance
    {out_dir}/summary.png    optimisation history (every trial, best so far) and parameter importance
    {out_dir}/best.toml      the best trial as a settings file: shadow train --config best.toml

``best.toml`` names the profile the search ran with and holds the ``[train]`` and ``[env]``
values that differ from that profile's defaults in the best trial's settings (the searched
ones and whatever the search's own config set), so loading it reproduces that trial's
training setup exactly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import tomli_w
from matplotlib.figure import Figure

from config.profiles import profile_values
from config.settings import EnvSettings, Settings, TrainSettings
from trainer.tuning.space import apply

if TYPE_CHECKING:
    import optuna

    from trainer.tuning.folds import TuningData

STATE_NAMES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running",
               "WAITING": "waiting"}


def write_tune_outputs(study: optuna.Study, settings: Settings, data: TuningData) -> dict[str, Path]:
    """Write the four files (``best.toml`` only once a trial completed); returns them by kind."""
    out = settings.tune.out_dir
    frame = trials_frame(study)
    paths = {"trials": out / "trials.csv", "summary": out / "summary.json", "report": out / "summary.png"}
    frame.to_csv(paths["trials"], index=False)
    importance = param_importance(study)
    best = _best(study)
    summary = {
        "study": study.study_name,
        "objective": f"mean over folds of the validation {settings.tune.objective} (maximised)",
        "data": data.describe(),
        "trials": {name: int((frame["state"] == name).sum()) for name in ("complete", "pruned", "failed")},
        "best": None if best is None else {
            "number": best.number, "value": best.value, "params": best.params,
            "fold_metrics": best.user_attrs.get("fold_metrics", []),
        },
        "importance": importance,
    }
    paths["summary"].write_text(json.dumps(_finite(summary), indent=2) + "\n", encoding="utf-8")
    plot_search(frame, importance, paths["report"], title=f"study {study.study_name!r}: {summary['objective']}")
    if best is not None:
        paths["best_config"] = write_best_config(apply(settings, best.params), out / "best.toml",
                                                 header=f"best trial {best.number} of study {study.study_name!r}: "
                                                        f"mean validation {settings.tune.objective} {best.value:.6g}")
    return paths


SKILL_COLUMNS: tuple[str, ...] = ("timing", "net_exposure", "time_long", "time_short", "n_trades", "fees_to_capital",
                                  "funding_to_capital", "turnover")
"""Validation figures averaged over a trial's folds and seeds into trials.csv (``mean_<name>``)."""


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, value, its range over seeds (``seed_min``, ``seed_max``:
    each seed's mean score), duration, score of each fold run, the mean skill figures
    (:data:`SKILL_COLUMNS`), parameters, error."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        scores = trial.user_attrs.get("fold_scores", [])
        seed_scores = trial.user_attrs.get("seed_scores", [])
        metrics = trial.user_attrs.get("fold_metrics", [])
        error = (trial.user_attrs.get("error") or "").strip()
        rows.append({
            "number": trial.number, "state": STATE_NAMES.get(trial.state.name, trial.state.name.lower()),
            "value": trial.value, "last_reported": trial.intermediate_values[max(trial.intermediate_values)]
            if trial.intermediate_values else None, "folds_run": len(scores),
            "seeds": len(seed_scores) or None, "seed_min": min(seed_scores, default=None),
            "seed_max": max(seed_scores, default=None), "duration_s": trial.user_attrs.get("duration_s"),
            **{f"fold_{i + 1}": score for i, score in enumerate(scores)},
            **{f"mean_{name}": _mean(m.get(name) for m in metrics) for name in SKILL_COLUMNS},
            **{f"param_{name}": value for name, value in trial.params.items()},
            "error": error.splitlines()[-1] if error else "",
        })
    return pd.DataFrame(rows)


def _mean(values: Any) -> float | None:
    present = [float(v) for v in values if v is not None]
    return sum(present) / len(present) if present else None


def param_importance(study: optuna.Study) -> dict[str, float]:
    """PED-ANOVA importance of each parameter over the completed trials (no scikit-learn
    needed); empty when fewer than two trials completed or the values do not vary."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2 or len({t.value for t in complete}) < 2:
        return {}
    try:
        return {name: float(value) for name, value in optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator()).items()}
    except (RuntimeError, ValueError):  # too few distinct values for the evaluator
        return {}


def plot_search(frame: pd.DataFrame, importance: dict[str, float], path: Path, title: str = "") -> Figure:
    """Write the two-panel PNG: optimisation history, parameter importance."""
    fig = Figure(figsize=(13, 5.5))
    history, bars = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.6, 1], "wspace": 0.45})
    if not frame.empty:
        for state, style in (("complete", {"color": "#1f5fbf", "marker": "o"}),
                             ("pruned", {"color": "#999999", "marker": "x"})):
            part = frame[frame["state"] == state]
            y = part["value"] if state == "complete" else part["last_reported"]
            history.scatter(part["number"], y, label=f"{state} ({len(part)})", s=28, **style)
        complete = frame[frame["state"] == "complete"].sort_values("number")
        if not complete.empty:
            history.step(complete["number"], complete["value"].cummax(), where="post", color="#d62728",
                         label="best so far")
        failed = int((frame["state"] == "failed").sum())
        if failed:
            history.text(0.01, 0.02, f"{failed} failed trial(s) not shown", transform=history.transAxes, fontsize=8)
    history.set_xlabel("trial")
    history.set_ylabel("mean validation score (pruned: last report)")
    history.set_title("Optimisation history")
    history.legend(loc="best", fontsize=8)
    history.grid(alpha=0.3)
    if importance:
        names = list(importance)[::-1]
        bars.barh(names, [importance[n] for n in names], color="#1f5fbf")
        bars.set_xlabel("importance (PED-ANOVA, normalised)")
    else:
        bars.text(0.5, 0.5, "needs two completed trials\nwith different scores", ha="center", va="center",
                  transform=bars.transAxes)
        bars.set_xticks([])
        bars.set_yticks([])
    bars.set_title("Parameter importance")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return fig


def write_best_config(settings: Settings, path: Path, header: str = "") -> Path:
    """The profile, and the ``[train]`` and ``[env]`` values of ``settings`` that differ from
    that profile's defaults, as TOML."""
    defaults = {"train": TrainSettings().model_dump(mode="json"), "env": EnvSettings().model_dump(mode="json")}
    _overlay(defaults, profile_values(settings.profile))
    sections = _differing(settings.model_dump(mode="json", include={"train", "env"}, exclude_none=True), defaults)
    sections.get("train", {}).pop("resume", None)  # a checkpoint of another run is never part of the best setup
    body = tomli_w.dumps({"profile": settings.profile} | {name: values for name, values in sections.items() if values})
    comment = f"# {header}\n# use with: shadow train --config {path.name}\n" if header else ""
    path.write_text(comment + body, encoding="utf-8")
    return path


def _overlay(values: dict[str, Any], overlay: dict[str, Any]) -> None:
    for key, value in overlay.items():
        if isinstance(value, dict):
            _overlay(values.setdefault(key, {}), value)
        else:
            values[key] = value


def _differing(values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The leaves of ``values`` that differ from ``defaults`` (nested dictionaries)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            if nested := _differing(value, defaults.get(key, {})):
                out[key] = nested
        elif key not in defaults or defaults[key] != value:
            out[key] = value
    return out


def _best(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    import optuna

    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        return None
    return study.best_trial


def _finite(value: Any) -> Any:
    """Strict JSON: NaN and infinities become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value

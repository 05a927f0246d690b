"""Strategy specs (``name:key=value,...``) build the right strategy or fail with a clear message."""

from __future__ import annotations

import pytest

from strategies.base import MarketContext, Strategy, StrategySpecError, parse_spec
from strategies.baselines import RandomStrategy, RsiReversion, SmaCross
from strategies.model_metadata import ModelMismatchError
from strategies.policy import PolicyStrategy
from strategies.specs import STRATEGIES, build_strategy, strategy_help


def test_parse_forms():
    plain = parse_spec("flat")
    assert (plain.name, plain.params, plain.positional) == ("flat", {}, None)
    spec = parse_spec(" SMA:fast=5, slow=20 ")
    assert (spec.name, spec.params, spec.positional) == ("sma", {"fast": "5", "slow": "20"}, None)
    bare = parse_spec("ppo:models/run,1/best model.zip")  # no '=': the whole rest, commas included
    assert (bare.name, bare.params, bare.positional) == ("ppo", {}, "models/run,1/best model.zip")


@pytest.mark.parametrize("text, message", [
    ("", "empty strategy name"),
    (":fast=1", "empty strategy name"),
    ("sma:", "nothing after ':'"),
    ("sma:fast=5,slow", "'slow' is not key=value"),
    ("sma:fast=5,fast=6", "parameter 'fast' given twice"),
])
def test_parse_errors_name_the_problem(text, message):
    with pytest.raises(StrategySpecError, match=message):
        parse_spec(text)


def test_every_registered_name_builds_with_defaults_except_ppo():
    for name in STRATEGIES:
        if name == "ppo":
            continue
        strategy = build_strategy(name)
        assert isinstance(strategy, Strategy)
        assert build_strategy(strategy.name).name == strategy.name  # the canonical name round-trips


def test_parameters_are_typed():
    assert build_strategy("sma:fast=5,slow=20,short=yes") == SmaCross(5, 20, True)
    assert build_strategy("rsi:period=7,lower=20.5") == RsiReversion(period=7, lower=20.5)
    assert build_strategy("random:seed=9,trade_prob=0.5") == RandomStrategy(9, 0.5)


@pytest.mark.parametrize("spec, message", [
    ("macd", r"unknown strategy 'macd' in 'macd'; known: flat, buy_and_hold, sma, rsi, random, ppo"),
    ("sma:fast=x", r"fast='x' is not an integer"),
    ("rsi:lower=low", r"lower='low' is not a number"),
    ("sma:short=maybe", r"short='maybe' is not true/false"),
    ("sma:speed=3", r"unknown parameter\(s\) speed; sma accepts: fast=10,slow=50,short=false"),
    ("sma:fast=50,slow=10", r"sma: need 1 <= fast < slow, got fast=50, slow=10"),
    ("rsi:lower=60", r"rsi: need 0 < lower <= exit <= upper < 100"),
    ("random:trade_prob=2", r"random: trade_prob must be in \[0, 1\], got 2.0"),
    ("flat:now", r"flat takes key=value parameters \(none\), not a bare argument"),
    ("ppo", r"strategy spec 'ppo': missing path"),
])
def test_bad_specs_say_what_is_wrong(spec, message):
    with pytest.raises(StrategySpecError, match=message):
        build_strategy(spec)


def test_ppo_spec_loads_the_model_with_the_configured_lookback(ppo_model):
    strategy = build_strategy(f"ppo:{ppo_model}", lookback_window=20)
    assert isinstance(strategy, PolicyStrategy) and strategy.name == f"ppo:{ppo_model}"  # served from its export
    assert build_strategy(f"ppo:path={ppo_model}").path == ppo_model
    with pytest.raises(ModelMismatchError, match="configured 50"):
        build_strategy(f"ppo:{ppo_model}", lookback_window=50)


def test_help_lists_every_strategy_with_its_defaults():
    text = strategy_help()
    for line in ("sma:fast=10,slow=50,short=false", "rsi:period=14,lower=30,upper=70,exit=50,short=false",
                 "random:seed=0,trade_prob=0.05", "ppo:PATH", "buy_and_hold", "flat"):
        assert line in text


def test_market_context_window_is_the_causal_tail():
    import numpy as np

    context = MarketContext(np.arange(10.0), np.arange(10) * 60_000)
    window = context.window(6, 3)
    assert window.closes.tolist() == [4.0, 5.0, 6.0]
    assert len(context.window(1, 5)) == 2
    with pytest.raises(ValueError, match="same length"):
        MarketContext(np.arange(3.0), np.arange(4))

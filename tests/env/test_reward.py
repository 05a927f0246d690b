"""Each of the seed's five reward components alone, against hand-computed values, the
weights and scaling that combine them, the net reward and the fee multiplier."""

from __future__ import annotations

import math

import pytest

from env.reward import BPS, NetReward, RewardWeights, StepReward

BALANCE = 200.0
SCALING = 1e-4
PER_QUOTE = SCALING * BPS / BALANCE  # reward per unit of quote-currency PnL: 0.005


def only(**weights: float) -> StepReward:
    """A reward with every component off except the given ones."""
    zero = {"realized": 0.0, "unrealized": 0.0, "losing_hold": 0.0, "inactivity": 0.0, "blowup": 0.0}
    return StepReward(RewardWeights(**zero | weights), SCALING, BALANCE)


def test_realized_pays_the_net_pnl_of_trades_closed_this_step() -> None:
    reward = only(realized=1.0)
    assert reward(4.0, 0.0, 0.0, 0, False) == pytest.approx(4.0 * PER_QUOTE)  # +2% of 200 -> 0.02
    assert reward(4.0, 0.0, 0.0, 0, False) == pytest.approx(0.02)
    assert reward(-1.0, 0.0, 0.0, 0, False) == pytest.approx(-0.005)
    assert only(realized=2.5)(4.0, 0.0, 0.0, 0, False) == pytest.approx(0.05)


def test_unrealized_pays_the_open_positions_move_over_the_step() -> None:
    reward = only(unrealized=0.1)
    assert reward(0.0, 3.0, 10.0, 0, False) == pytest.approx(0.1 * 3.0 * PER_QUOTE)
    assert reward(0.0, -3.0, -10.0, 0, False) == pytest.approx(-0.1 * 3.0 * PER_QUOTE)  # the level does not count


def test_losing_hold_charges_the_open_loss_each_step_it_is_held() -> None:
    reward = only(losing_hold=0.01)
    assert reward(0.0, 0.0, -8.0, 0, False) == pytest.approx(-0.01 * 8.0 * PER_QUOTE)
    assert reward(0.0, 0.0, 8.0, 0, False) == 0.0  # only while losing
    assert reward(0.0, 0.0, 0.0, 0, False) == 0.0


def test_inactivity_is_a_flat_charge_after_the_tolerated_flat_steps() -> None:
    reward = only(inactivity=0.1, inactivity_steps=240)
    assert reward(0.0, 0.0, 0.0, 240, False) == 0.0
    assert reward(0.0, 0.0, 0.0, 241, False) == pytest.approx(-0.1 * SCALING)  # bps, not PnL: balance-free
    assert StepReward(RewardWeights(realized=0, unrealized=0, losing_hold=0, inactivity=0.1, blowup=0), SCALING,
                      10_000.0)(0.0, 0.0, 0.0, 241, False) == pytest.approx(-0.1 * SCALING)


def test_blowup_is_charged_once_on_the_terminating_step() -> None:
    reward = only(blowup=10_000.0)
    assert reward(0.0, 0.0, 0.0, 0, True) == pytest.approx(-1.0)  # the whole initial balance, in bps x scaling
    assert reward(0.0, 0.0, 0.0, 0, False) == 0.0


def test_the_seed_weights_add_the_components() -> None:
    seed = StepReward(RewardWeights(), SCALING, BALANCE)
    parts = (only(realized=1.0)(4.0, -2.0, -5.0, 300, True), only(unrealized=0.1)(4.0, -2.0, -5.0, 300, True),
             only(losing_hold=0.01)(4.0, -2.0, -5.0, 300, True), only(inactivity=0.1)(4.0, -2.0, -5.0, 300, True),
             only(blowup=10_000.0)(4.0, -2.0, -5.0, 300, True))
    assert seed(4.0, -2.0, -5.0, 300, True) == pytest.approx(sum(parts))
    assert all(p != 0 for p in parts)
    doubled = StepReward(RewardWeights(), 2 * SCALING, BALANCE)
    assert doubled(4.0, -2.0, -5.0, 300, True) == pytest.approx(2 * sum(parts))


@pytest.mark.parametrize(("field", "value"), [("realized", -1.0), ("inactivity_steps", -1), ("max_loss", 0.0),
                                              ("max_loss", 1.5)])
def test_bad_weights_name_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"RewardWeights.{field}"):
        RewardWeights(**{field: value})


def test_the_net_reward_is_100_times_the_log_equity_change() -> None:
    net = NetReward()
    assert net(100.0, 101.0, 0.0) == pytest.approx(100 * math.log(1.01))
    assert net(100.0, 99.0, 0.04) == pytest.approx(100 * math.log(0.99))  # fees are in the equity already
    assert net(100.0, 100.0, 0.0) == 0.0


def test_the_fee_multiplier_charges_the_extra_fees_in_both_modes() -> None:
    assert NetReward(3.0)(100.0, 99.0, 0.04) == pytest.approx(100 * math.log(0.99) - 100 * 2 * 0.04 / 100.0)
    assert NetReward(0.0)(100.0, 99.0, 0.04) == pytest.approx(100 * math.log(0.99) + 0.04)
    seed = StepReward(RewardWeights(), SCALING, BALANCE)
    tripled = StepReward(RewardWeights(), SCALING, BALANCE, fee_multiplier=3.0)
    expected = seed(4.0, -2.0, -5.0, 300, True) - 2 * 0.5 * PER_QUOTE
    assert tripled(4.0, -2.0, -5.0, 300, True, 0.5) == pytest.approx(expected)
    assert seed(4.0, -2.0, -5.0, 300, True, 0.5) == seed(4.0, -2.0, -5.0, 300, True)  # 1x: the seed's reward
    with pytest.raises(ValueError, match="fee_multiplier"):
        NetReward(-1.0)

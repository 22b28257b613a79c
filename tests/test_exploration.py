"""Lesson 06's experiment helpers: coverage of the far room, episodes at the target, and one short run's logs."""

import numpy as np
import pytest

from dreamer_tutorial.exploration import (
    EPISODE,
    coverage_curve,
    episodes_at_target,
    exploration_run,
    first_found,
    visit_counts,
)


def test_far_room_coverage_counts_new_far_cells_only():
    points = np.array([[-0.5, 0.0], [0.05, 0.05], [0.06, 0.02], [0.95, -0.95], [0.05, 0.05], [-0.95, 0.95]])
    # far room = x > 0 on a 10 x 10 grid: 50 cells; (0.05, 0.05) and (0.06, 0.02) share a cell
    np.testing.assert_allclose(coverage_curve(points), np.array([0, 1, 1, 2, 2, 2]) / 50)
    counts = visit_counts(points)
    assert counts.sum() == 6 and counts[5, 5] == 3 and counts[0, 9] == 1  # rows are y, columns x


def test_episodes_at_target_and_first_found():
    reward = np.zeros(3 * EPISODE + 7)
    reward[[5, 6, 2 * EPISODE + 1, 3 * EPISODE + 2]] = 1  # the last hit is in an unfinished episode
    assert episodes_at_target(reward) == 2
    assert first_found(reward) == 5 and np.isnan(first_found(np.zeros(10)))


def test_exploration_run_logs_a_short_agent_run():
    log = exploration_run("plan2explore", seed=0, steps=60, prefill=40, train_every=10)
    assert log["point"].shape == (60, 2) and log["reward"].shape == (60,)
    np.testing.assert_array_equal(log["update_step"], [40, 50])
    assert len(log["imag_reward"]) == 2 and np.all(np.isfinite(log["imag_reward"]))
    assert len(log["r_int"]) == 19 and np.all(log["r_int"] > 0)  # one per transition after the first policy step
    assert np.all(log["point"][:, 0] < 0.05) or np.any(log["point"][:, 1] > 0.4)  # behind the wall unless via gap
    with pytest.raises(ValueError, match="variant must be one of"):
        exploration_run("greedy", 0, 10)

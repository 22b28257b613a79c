"""results/carracing/value_calibration.py: the discounted return it compares the critic with, and that its
episodes are those of the evaluation table."""

import numpy as np
import torch
from script_loader import load_script

from dreamer_tutorial import Config
from dreamer_tutorial.agent import Dreamer
from dreamer_tutorial.evaluate import evaluate_episodes
from dreamer_tutorial.train import env_from_config

value_calibration = load_script("results/carracing/value_calibration.py")


def test_discounted_returns_of_constant_rewards_are_the_geometric_sums():
    gamma, n = 0.9, 6
    g = value_calibration.discounted_returns(np.ones(n), gamma)
    np.testing.assert_allclose(g, [(1 - gamma ** (n - t)) / (1 - gamma) for t in range(n)])
    # r_{t+1} of the first step counts in full, the next at gamma: G_0 = 2 + 0.9 * 5 for rewards (2, 5).
    np.testing.assert_allclose(value_calibration.discounted_returns(np.array([2.0, 5.0]), gamma), [6.5, 5.0])


def test_drive_replays_the_evaluation_table_episode_with_a_value_per_state():
    config = Config.preset("carracing_cpu", time_limit=30, device="cpu")  # 30 policy steps (60 frames)
    env = env_from_config(config)
    torch.manual_seed(0)
    agent = Dreamer(config, env.observation_space, env.action_space)
    env.close()
    episode = value_calibration.drive(agent, config, seed=777_003)
    table = evaluate_episodes(agent, config, 1, seed=777_003, num_envs=1)
    assert len(episode["value"]) == len(episode["rewards"]) == 30 and episode["truncated"]
    assert len(episode["predicted"]) == 29  # the reward head at s_1 .. s_{T-1}
    np.testing.assert_allclose(episode["rewards"].sum(), table["returns"][0], atol=1e-4)
    assert np.isfinite(episode["value"]).all()

"""Does it learn? DreamerV2 on PointReach within a few CPU minutes, against a random policy's return."""

import numpy as np
import pytest
import torch

from dreamer_tutorial import Config, make_env, train

ENV = "dreamer_tutorial/PointReachDiscrete-v0"
TARGET = (0.0, 0.0)  # a fixed target: the reward depends on the point's position only, learnable in ~1.5k updates


def random_policy_return(episodes=20, seed=123):
    env = make_env(ENV, target=TARGET)
    rng = np.random.default_rng(seed)
    returns = []
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(int(rng.integers(5)))
            total, done = total + reward, terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


@pytest.mark.slow
def test_debug_preset_learns_pointreach(tmp_path):
    torch.set_num_threads(2)
    # Lesson 07's loop: the world model at 3e-3 (the debug preset's 1e-3 is slow at this size) and an update every
    # policy step. Seeds 0-4 on 2 cores, 2 threads (2026-11-27): random -39.6, trained -6.3 to -13.1 for four of them
    # (this one, seed 0: -8.2), seed 1 -56.4; ~2 min each. The earlier form (an update every 2nd step at 1e-3,
    # 1750 updates) passed here by 2.6 points, and failed by 1.3 after a change that only reordered float sums.
    config = Config.preset("debug", env=ENV, device="cpu", steps=3000, prefill=500, train_every=1, model_lr=3e-3,
                           eval_every=10**9, eval_episodes=10, video_every_eval=False, logdir=str(tmp_path))
    result = train(config, env_fn=lambda: make_env(ENV, target=TARGET), progress=False)
    random_return = random_policy_return()
    assert result["eval_return"] > random_return + 10, (
        f"after {result['updates']} updates the greedy policy scores {result['eval_return']:.1f} over "
        f"{len(result['eval_returns'])} episodes; a random policy scores {random_return:.1f}")
    print(f"trained {result['eval_return']:.1f} ± {result['eval_std']:.1f} vs random {random_return:.1f}")

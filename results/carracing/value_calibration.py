"""Does the critic know what the real track pays? Its value of the states an agent drives through, against the
discounted return the car then really earned.

    python results/carracing/value_calibration.py RUN_LOGDIR [--best] [--episodes 10] [--seed 777000] [--first 150]

Drives the greedy policy for `--episodes` episodes (one env, episode e on env seed `seed + e`, torch seeded as
`dreamer_tutorial.evaluate` seeds a single episode, so these are the episodes of its table). After every frame the
agent's posterior state s_t gives the critic's value v(s_t) and the reward head's prediction for that frame. The
critic is trained towards lambda returns of imagined rewards r_{t+1}, r_{t+2}, ... (behavior.py), so its real
counterpart is the discounted return G_t = sum_k gamma^k r_{t+1+k} of the rewards that followed. An episode that
ends by the time limit leaves G_t short by about gamma^(T-t) times the value of its last state; the comparison
therefore uses the first `--first` policy steps (at T = 500 steps, gamma = 0.99 and 150 steps: under 3 % of a
value). Prints one Markdown row per episode: return, mean v and mean G over those steps, their ratio, and the mean
predicted and real reward per step over the whole episode.
"""

from __future__ import annotations

import argparse
import sys

import gymnasium as gym
import numpy as np
import torch

from dreamer_tutorial.train import env_from_config, load_agent


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """G_t = sum_k gamma^k rewards[t + k] (rewards[t] is r_{t+1}, the reward of the step taken from s_t)."""
    out, running = np.zeros(len(rewards)), 0.0
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


@torch.no_grad()
def drive(agent, config, seed: int, env: gym.Env | None = None) -> dict[str, np.ndarray]:
    """One greedy episode: values v(s_t) and predicted rewards at every posterior state s_0 .. s_{T-1}, and the
    real rewards r_1 .. r_T that followed (r_{t+1} is the reward of the frame s_{t+1} sees). `env` (closed
    afterwards) replaces the run's own env, e.g. with a wrapper that changes the reward."""
    env = env or env_from_config(config)
    torch.manual_seed(seed)
    agent.eval()
    try:
        obs, _ = env.reset(seed=seed)
        state, values, predicted, rewards, done = None, [], [], [], False
        while not done:
            action, state = agent.policy(obs, state, training=False)
            feat = state[0].feat
            values.append(agent.task_behavior.value(feat).item())
            predicted.append(agent.world_model.reward(feat).float().item())
            obs, reward, terminated, truncated, _ = env.step(action[0])
            rewards.append(float(reward))
            done = terminated or truncated
    finally:
        env.close()
    # predicted[t] is the reward head at s_t, the reward of the frame s_t saw: r_t (r_0 = 0 at the reset frame)
    return {"value": np.array(values), "predicted": np.array(predicted[1:]), "rewards": np.array(rewards),
            "truncated": truncated}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logdir")
    parser.add_argument("--best", action="store_true", help="the run's best.pt, not latest.pt")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=777_000)
    parser.add_argument("--first", type=int, default=150, help="compare v and G over this many first steps")
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.first < 1:
        parser.error(f"expected --episodes and --first of at least 1, got {args.episodes} and {args.first}")
    agent, config = load_agent(args.logdir, best=args.best)
    print(f"gamma {config.gamma}; v and G over the first {args.first} policy steps\n\n"
          "| env seed | return | steps | ended | mean v | mean G | v / G | reward / step: predicted | real |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    ratios = []
    for seed in range(args.seed, args.seed + args.episodes):
        e = drive(agent, config, seed)
        g = discounted_returns(e["rewards"], config.gamma)
        steps, n = len(g), min(args.first, len(g))
        v, g = e["value"][:n].mean(), g[:n].mean()
        ratios.append(v / g if g > 0 else np.nan)
        print(f"| {seed} | {e['rewards'].sum():.1f} | {steps} | "
              f"{'time' if e['truncated'] else 'terminal'} | {v:.1f} | {g:.1f} | {ratios[-1]:.2f} | "
              f"{e['predicted'].mean():.2f} | {e['rewards'][:-1].mean():.2f} |")
    print(f"\nmedian v / G: {np.nanmedian(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

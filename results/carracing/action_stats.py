"""What did a CarRacing run's policy do while it trained? Steering, gas and brake from its replay, per window.

    python results/carracing/action_stats.py RUN_LOGDIR [RUN_LOGDIR ...] [--window 5000]

Reads the replay saved in the run's latest checkpoint (every step of its first env, up to the replay's capacity),
maps each policy action to CarRacing's (steer, gas, brake) with the run's own wrapper (`car_actions`), and prints
one Markdown row per window of policy steps, oldest first (a full replay has overwritten the first steps of a
run: the rows then start later): mean steer, mean |steer|, mean gas, mean brake, the fraction of steps
that brake at all (brake > 0.1), the fraction that press gas and brake together (both > 0.5), and the fraction of
steps that earned a tile (reward > 0). Reset rows (is_first) hold no action and are left out, and so is a last
window shorter than a tenth of `--window`.
"""

from __future__ import annotations

import argparse
import sys

import gymnasium as gym
import numpy as np

from dreamer_tutorial.config import Config
from dreamer_tutorial.envs import CAR_WRAPPERS
from dreamer_tutorial.train import load_latest


def action_table(logdir: str, window: int) -> list[str]:
    state = load_latest(logdir)
    config = Config(**state["config"])
    replay = state["replay"]
    filled = int(replay["filled"][0])
    # oldest row first: once the replay is full, writing goes on at `pos` over the oldest rows (before that
    # pos == filled, and rolling by the whole length keeps the stored order)
    order = np.roll(np.arange(filled), -int(replay["pos"][0]))
    actions = replay["action"][0, :filled].numpy()[order]
    rewards = replay["reward"][0, :filled].numpy()[order]
    first = replay["is_first"][0, :filled].numpy().astype(bool)[order]
    offset = max(int(state["counters"]["step"]) - filled, 0)  # the policy steps the replay no longer holds
    wrapper = CAR_WRAPPERS[config.car_actions](gym.make("CarRacing-v3"))
    rows = [f"{logdir} ({filled} steps, car_actions={config.car_actions}"
            + (f"; the replay holds the last {filled} steps of {state['counters']['step']}" if offset else "") + ")",
            "",
            "| steps | steer | abs(steer) | gas | brake | brake > 0.1 | gas and brake > 0.5 | tile reward |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for start in range(0, filled - window // 10, window):
        keep = ~first[start:start + window]
        env_actions = np.array([wrapper.action(a) for a in actions[start:start + window][keep]])
        steer, gas, brake = env_actions.T
        tiles = (rewards[start:start + window] > 0).mean()
        span = f"{(offset + start) / 1000:g}k-{(offset + min(start + window, filled)) / 1000:g}k"
        rows.append(f"| {span} | {steer.mean():+.2f} | "
                    f"{np.abs(steer).mean():.2f} | {gas.mean():.2f} | {brake.mean():.2f} | {(brake > 0.1).mean():.2f} "
                    f"| {((gas > 0.5) & (brake > 0.5)).mean():.2f} | {tiles:.3f} |")
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logdirs", nargs="+")
    parser.add_argument("--window", type=int, default=5000, help="policy steps per row")
    args = parser.parse_args(argv)
    for logdir in args.logdirs:
        print("\n".join(action_table(logdir, args.window)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

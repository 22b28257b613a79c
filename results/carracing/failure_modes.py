"""Why did an episode fail? Replay a run's episodes and trace what the car did, policy step by policy step.

    python results/carracing/failure_modes.py RUN_LOGDIR --table RESULT_DIR/eval_episodes.csv [--below 800] [--best]
    python results/carracing/failure_modes.py RUN_LOGDIR --seeds 777055 777061 [--best]

Replays the greedy policy on each env seed (those of the table's episodes below `--below`, or `--seeds`) with one
env, as `dreamer_tutorial.evaluate` does for a single episode, so each replay is the table's episode. A wrapper
reads the car from the env after every policy step: tiles visited so far, whether any wheel touches the road, the
speed, and whether the car moves against the track's direction (its velocity against the direction of the
nearest track point, at more than 3 m/s, on the road). One Markdown row per episode: return, how it ended, tiles
visited, steps with every wheel on the grass and the longest such stretch, steps on the road the wrong way, the
step of the last new tile, and a verdict (`verdict`: lost on the grass, turned around, stalled on the road, slow).
"""

from __future__ import annotations

import argparse
import csv
import sys

import gymnasium as gym
import numpy as np
import torch

from dreamer_tutorial.train import env_from_config, evaluate, load_agent, make_vector_env

PLAYFIELD = 2000 / 6.0  # gymnasium's CarRacing: an episode ends when the car leaves the square |x|, |y| <= this


class CarTrace(gym.Wrapper):
    """Records the car after every step (outermost, so one record per policy step): tiles, on_road, wrong_way,
    speed; `ended` is "lap", "playfield" or "time" once the episode is over."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.points = np.array(self.env.unwrapped.track)[:, 2:4]  # (alpha, beta, x, y) per track point
        self.record = {"tiles": [], "on_road": [], "wrong_way": [], "speed": []}
        self.ended = None
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        car = self.env.unwrapped.car
        position, velocity = np.array(car.hull.position), np.array(car.hull.linearVelocity)
        nearest = int(np.argmin(((self.points - position) ** 2).sum(1)))
        direction = self.points[(nearest + 1) % len(self.points)] - self.points[nearest]
        on_road = any(wheel.tiles for wheel in car.wheels)
        speed = float(np.linalg.norm(velocity))
        self.record["tiles"].append(self.env.unwrapped.tile_visited_count)
        self.record["on_road"].append(on_road)
        self.record["wrong_way"].append(on_road and speed > 3 and float(velocity @ direction) < 0)
        self.record["speed"].append(speed)
        if terminated or truncated:
            self.ended = ("playfield" if np.abs(position).max() > PLAYFIELD else "lap") if terminated else "time"
        return obs, reward, terminated, truncated, info


def last_new_tile(tiles: np.ndarray) -> int:
    """The policy step (from 1) at which the last new tile was visited; 0 if none was."""
    gained = np.flatnonzero(np.diff(tiles, prepend=0) > 0)
    return int(gained[-1]) + 1 if len(gained) else 0


def verdict(record: dict[str, list], ended: str) -> str:
    """What went wrong: "lap finished" or "left the playfield" when the episode ended so; "lost on the grass" when
    no new tile came in the last 25 steps or more and the car spent most of them off the road; "turned around"
    when it drove on the road against the track's direction for a fifth of the episode or more (after a spin it
    drives the lap backwards: tiles on the far side still pay, the ones it passed again do not, so the time runs
    out); "stalled on the road" when no new tile came in the last 25 steps or more otherwise; else "slow" (tiles
    were still coming when the time ran out)."""
    if ended == "lap":
        return "lap finished"
    if ended == "playfield":
        return "left the playfield"
    steps, last = len(record["tiles"]), last_new_tile(np.array(record["tiles"]))
    stuck = steps - last >= 25
    if stuck and 1 - np.mean(record["on_road"][last:]) > 0.5:
        return "lost on the grass"
    if np.mean(record["wrong_way"]) >= 0.2:
        return "turned around"
    return "stalled on the road" if stuck else "slow"


def longest_run(flags: np.ndarray) -> int:
    """The longest stretch of consecutive True values."""
    best = run = 0
    for flag in flags:
        run = run + 1 if flag else 0
        best = max(best, run)
    return best


def trace_episodes(logdir: str, seeds: list[int], best: bool = False) -> list[dict]:
    """Replay each seed's greedy episode (one env, torch seeded as evaluate_episodes seeds it) with `CarTrace`."""
    agent, config = load_agent(logdir, best=best)
    envs = make_vector_env(config, env_fn=lambda: CarTrace(env_from_config(config)), num_envs=1)
    rows = []
    try:
        for seed in seeds:
            torch.manual_seed(seed)
            stats = evaluate(agent, envs, 1, seed=seed)
            trace = envs.envs[0]
            off = ~np.array(trace.record["on_road"])
            tiles = np.array(trace.record["tiles"])
            rows.append({"seed": seed, "return": stats["returns"][0], "ended": trace.ended,
                         "tiles": f"{tiles[-1]}/{len(trace.points)}", "off_road": int(off.sum()),
                         "longest_off_road": longest_run(off), "wrong_way": int(np.sum(trace.record["wrong_way"])),
                         "last_new_tile": last_new_tile(tiles),
                         "steps": len(tiles), "verdict": verdict(trace.record, trace.ended)})
    finally:
        envs.close()
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logdir")
    parser.add_argument("--table", help="an eval_episodes.csv of report.py: replay its episodes below --below")
    parser.add_argument("--below", type=float, default=800.0)
    parser.add_argument("--seeds", type=int, nargs="*", default=[], help="env seeds to replay")
    parser.add_argument("--best", action="store_true", help="the run's best.pt, not latest.pt")
    args = parser.parse_args(argv)
    seeds, table = list(args.seeds), {}
    if args.table:
        with open(args.table) as f:
            table = {int(row["seed"]): float(row["return"]) for row in csv.DictReader(f)}
        seeds += [seed for seed, ret in table.items() if ret < args.below]
    if not seeds:
        parser.error("expected env seeds to replay: --seeds S ... or --table eval_episodes.csv with episodes "
                     "below --below")
    rows = trace_episodes(args.logdir, seeds, args.best)
    print("| env seed | return | ended | tiles | steps off road (longest) | wrong way | last new tile | verdict |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['seed']} | {r['return']:.1f} | {r['ended']} after {r['steps']} | {r['tiles']} | "
              f"{r['off_road']} ({r['longest_off_road']}) | {r['wrong_way']} | {r['last_new_tile']} | "
              f"{r['verdict']} |")
    for r in rows:
        if r["seed"] in table and abs(table[r["seed"]] - r["return"]) > 1e-3:
            print(f"warning: the replay of env seed {r['seed']} scored {r['return']:.1f}, the table "
                  f"{table[r['seed']]:.1f}: not the same episode")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Do several agents fail on the same tracks? Read their 100-episode tables and count, per track, how many failed.

    python results/carracing/failures.py RESULT_DIR [RESULT_DIR ...] [--below 700] [--turning]

Each RESULT_DIR holds an `eval_episodes.csv` of report.py (one row per episode: its env seed and return); all must
have evaluated the same env seeds. An episode fails when its return is below `--below`. Prints, for k = 0, 1, ...
agents, how many tracks failed for exactly k of them, beside the count expected if every agent failed on its own
tracks independently of the others (each with its own failure rate): many more tracks failed by all agents than
expected would mean hard tracks; counts as expected mean the failures belong to the agents, not to the tracks.
Then the tracks that failed most often. With `--turning`, also which tracks: each track's total turning (the sum of
the heading changes between its tiles, in radians, whatever their sign; every closed track turns by 2 pi net) is
computed from the env, and the failure rate and the mean return are shown per third of the tracks by turning (the
mean also falls with a track's length alone: twisty tracks have more tiles, and a lap costs 0.1 per frame).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np


def read_returns(path: str) -> dict[int, float]:
    """env seed -> return from an eval_episodes.csv of report.py, given the file or the folder that holds it."""
    path = Path(path)
    with open(path / "eval_episodes.csv" if path.is_dir() else path) as f:
        return {int(row["seed"]): float(row["return"]) for row in csv.DictReader(f)}


def returns_table(returns: list[dict[int, float]]) -> np.ndarray:
    """agents x tracks: the returns in env-seed order; refuses tables of other tracks."""
    seeds = sorted(returns[0])
    if any(sorted(r) != seeds for r in returns):
        raise ValueError("the tables must cover the same env seeds: re-run report.py with the same --seed and "
                         "--episodes")
    return np.array([[r[s] for s in seeds] for r in returns])


def overlap(returns: list[dict[int, float]], below: float) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
    """(observed, expected, failures per seed): observed[k] tracks failed by exactly k of the agents; expected[k] the
    same count if each agent failed independently with its own rate (a Poisson-binomial distribution)."""
    seeds = sorted(returns[0])
    failed = returns_table(returns) < below  # agents x tracks
    per_track = failed.sum(0)
    observed = np.bincount(per_track, minlength=len(returns) + 1)
    expected = np.array([1.0])
    for rate in failed.mean(1):  # the distribution of the count, one agent at a time
        expected = np.convolve(expected, [1 - rate, rate])
    return observed, expected * len(seeds), dict(zip(seeds, per_track.tolist()))


def track_turning(seeds: list[int]) -> np.ndarray:
    """Each CarRacing-v3 track's total turning in radians: |heading change| summed over its tiles, around the loop."""
    env = gym.make("CarRacing-v3")
    turning = []
    for seed in seeds:
        env.reset(seed=seed)
        heading = np.array([tile[1] for tile in env.unwrapped.track])  # (alpha, beta = heading, x, y) per tile
        turning.append(np.abs(np.diff(np.unwrap(np.r_[heading, heading[0]]))).sum())
    env.close()
    return np.array(turning)


def by_turning(returns: list[dict[int, float]], turning: np.ndarray, below: float) -> list[str]:
    """Markdown rows: per third of the tracks by total turning, its range, failure rate and mean over the agents."""
    table = returns_table(returns)
    thirds = np.array_split(np.argsort(turning, kind="stable"), 3)
    rows = ["| tracks by total turning | radians | failed | mean return |", "| --- | --- | --- | --- |"]
    for name, part in zip(("least turning third", "middle third", "most turning third"), thirds):
        rows.append(f"| {name} ({len(part)}) | {turning[part].min():.1f}-{turning[part].max():.1f} | "
                    f"{(table[:, part] < below).mean():.1%} | {table[:, part].mean():.1f} |")
    rows += ["", f"correlation over tracks of total turning with the agents' mean return: "
                f"{np.corrcoef(turning, table.mean(0))[0, 1]:.2f}"]
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", help="folders with an eval_episodes.csv")
    parser.add_argument("--below", type=float, default=700.0, help="an episode below this return failed")
    parser.add_argument("--turning", action="store_true", help="also the failures by each track's total turning")
    args = parser.parse_args(argv)
    missing = [d for d in args.results if not (Path(d) / "eval_episodes.csv").is_file()]
    if missing:
        parser.error(f"expected an eval_episodes.csv (written by report.py) in {', '.join(missing)}")
    returns = [read_returns(d) for d in args.results]
    try:
        observed, expected, per_seed = overlap(returns, args.below)
    except ValueError as error:
        parser.error(str(error))
    for d, r in zip(args.results, returns):
        print(f"{d}: {sum(v < args.below for v in r.values())} of {len(r)} below {args.below:g}")
    print(f"\n| failed by k of {len(returns)} agents | tracks | expected if independent |\n| --- | --- | --- |")
    for k, (o, e) in enumerate(zip(observed, expected)):
        print(f"| {k} | {o} | {e:.1f} |")
    worst = sorted(per_seed.items(), key=lambda item: -item[1])[:8]
    print("\nmost often failed: " + ", ".join(f"{seed} ({k})" for seed, k in worst if k > 1))
    if args.turning:
        print("\n" + "\n".join(by_turning(returns, track_turning(sorted(per_seed)), args.below)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

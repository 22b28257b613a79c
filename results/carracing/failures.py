"""Do several agents fail on the same tracks? Read their 100-episode tables and count, per track, how many failed.

    python results/carracing/failures.py RESULT_DIR [RESULT_DIR ...] [--below 700]

Each RESULT_DIR holds an `eval_episodes.csv` of report.py (one row per episode: its env seed and return); all must
have evaluated the same env seeds. An episode fails when its return is below `--below`. Prints, for k = 0, 1, ...
agents, how many tracks failed for exactly k of them, beside the count expected if every agent failed on its own
tracks independently of the others (each with its own failure rate): many more tracks failed by all agents than
expected would mean hard tracks; counts as expected mean the failures belong to the agents, not to the tracks.
Then the tracks that failed most often.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np


def read_returns(result_dir: str) -> dict[int, float]:
    with open(Path(result_dir) / "eval_episodes.csv") as f:
        return {int(row["seed"]): float(row["return"]) for row in csv.DictReader(f)}


def overlap(returns: list[dict[int, float]], below: float) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
    """(observed, expected, failures per seed): observed[k] tracks failed by exactly k of the agents; expected[k] the
    same count if each agent failed independently with its own rate (a Poisson-binomial distribution)."""
    seeds = sorted(returns[0])
    if any(sorted(r) != seeds for r in returns):
        raise ValueError("the tables must cover the same env seeds: re-run report.py with the same --seed and "
                         "--episodes")
    failed = np.array([[r[s] < below for s in seeds] for r in returns])  # agents x tracks
    per_track = failed.sum(0)
    observed = np.bincount(per_track, minlength=len(returns) + 1)
    expected = np.array([1.0])
    for rate in failed.mean(1):  # the distribution of the count, one agent at a time
        expected = np.convolve(expected, [1 - rate, rate])
    return observed, expected * len(seeds), dict(zip(seeds, per_track.tolist()))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", help="folders with an eval_episodes.csv")
    parser.add_argument("--below", type=float, default=700.0, help="an episode below this return failed")
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
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

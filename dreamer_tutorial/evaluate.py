"""Command line: evaluate a trained agent's greedy policy over many episodes.

    python -m dreamer_tutorial.evaluate --logdir D [--episodes 100] [--seed S] [--num_envs N] [--device cpu]
                                        [--csv PATH] [--video out.mp4] [--no-progress]

Loads the agent from D/checkpoints/latest.pt, runs `--episodes` episodes with the actor's mode on `--num_envs`
parallel copies of the run's env (the env, frame size, action repeat and time limit it was trained with),
prints mean ± std, min and max of the returns, and writes one CSV row per episode (episode, seed, return) to
D/eval_<N>ep_seed<S>.csv. With `--video`, the first episode is saved as a video.

Seeds: training uses env seeds below 100000 and the evaluations during training 1000000 and up, so the default
777000 gives tracks the agent never saw. Sub-env i is reset with seed S + i and runs episodes i, i + N, ...; its
later episodes continue that env's random stream, so only the first N episodes have a seed of their own (the CSV
leaves the others empty). The same defaults as results/carracing/report.py (env seed 777000, torch seed 0 for
the posterior samples of the latent state, min(num_envs of the run, episodes) parallel envs), so on the same
device its table and this command give the same numbers.

Importing this module (python -m does not) makes `dreamer_tutorial.evaluate` name it instead of the function
`evaluate` the package exports (Python sets a submodule as an attribute of its package); the module is therefore
callable and calls that function, so `from dreamer_tutorial import evaluate` works whatever was imported first.
"""

from __future__ import annotations

import argparse
import csv
import sys
import types
from pathlib import Path

import torch

from .train import evaluate, load_agent, make_vector_env
from .viz import save_video

EVAL_SEED = 777_000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dreamer_tutorial.evaluate",
                                     description="Evaluate a trained agent's greedy policy over many episodes.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--logdir", required=True, help="the run's logdir (holds checkpoints/latest.pt)")
    parser.add_argument("--episodes", type=int, default=100, help="number of evaluation episodes")
    parser.add_argument("--seed", type=int, default=EVAL_SEED,
                        help="env seed of the first episode (training used seeds < 100000)")
    parser.add_argument("--num_envs", type=int, default=None,
                        help="parallel envs (default: the run's num_envs, at most --episodes)")
    parser.add_argument("--device", default=None, help="torch device (default: the run's config)")
    parser.add_argument("--csv", default=None, help="per-episode returns (default: LOGDIR/eval_<N>ep_seed<S>.csv)")
    parser.add_argument("--video", default=None, help="save the first episode here (.mp4 or .gif)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def episode_order(num_envs: int, episodes: int) -> list[int]:
    """Episode numbers in the order `evaluate` returns them: sub-env 0's episodes 0, n, 2n, ..., then sub-env 1's."""
    return [e for i in range(num_envs) for e in range(i, episodes, num_envs)]


def run(args: argparse.Namespace) -> str:
    """Evaluate as the parsed options say; returns the summary line."""
    if args.episodes < 1:
        raise ValueError(f"--episodes must be at least 1, got {args.episodes}")
    if args.num_envs is not None and args.num_envs < 1:
        raise ValueError(f"--num_envs must be at least 1, got {args.num_envs}")
    agent, config = load_agent(args.logdir, device=args.device)
    num_envs = min(args.num_envs or config.num_envs, args.episodes)
    envs = make_vector_env(config, num_envs=num_envs)
    torch.manual_seed(0)
    try:
        stats = evaluate(agent, envs, args.episodes, seed=args.seed, record=args.video is not None,
                         progress=not args.no_progress)
    finally:
        envs.close()
    rows = sorted(zip(episode_order(num_envs, args.episodes), stats["returns"]))
    csv_path = Path(args.csv or Path(args.logdir) / f"eval_{args.episodes}ep_seed{args.seed}.csv")
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["episode", "seed", "return"])
        for episode, ret in rows:
            writer.writerow([episode, args.seed + episode if episode < num_envs else "", ret])
    summary = (f"{config.env}: return {stats['mean']:.1f} ± {stats['std']:.1f} (min {stats['min']:.1f}, max "
               f"{stats['max']:.1f}) over {args.episodes} episodes, greedy policy, env seeds from {args.seed}; "
               f"per episode in {csv_path}")
    if args.video is not None:
        summary += f"; first episode in {save_video(stats['frames'], args.video)}"
    return summary


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = run(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summary)
    return 0


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return evaluate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    sys.exit(main())

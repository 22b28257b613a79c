"""Command line: evaluate a trained agent's greedy policy over many episodes.

    python -m dreamer_tutorial.evaluate --logdir D [--episodes 100] [--seed S] [--num_envs N] [--device cpu]
                                        [--csv PATH] [--video out.mp4] [--sample] [--latent_mode]
                                        [--best | --step N] [--no-progress]

Loads the agent from D/checkpoints/latest.pt (with `--best`: best.pt, the agent of the run's best evaluation
during training, CSV D/eval_<N>ep_seed<S>_best.csv; with `--step N`: the agent of the evaluation at step N, kept by
runs trained with keep_eval_agents, CSV suffix `_step<N>`), runs `--episodes` episodes with the actor's mode on
`--num_envs` parallel copies of the run's env (the env, frame size, action repeat and time limit it was trained
with), prints mean ± std, min and max of the returns, and writes one CSV row per episode (episode, seed, return) to
D/eval_<N>ep_seed<S>.csv. With `--video`, the first episode is saved as a video. With `--sample` the actions are
drawn from the task actor's distribution, as during training, instead of taking its mode (CSV
D/eval_<N>ep_seed<S>_sampled.csv): the gap between the two tells whether the greedy mode is a good driver. With
`--latent_mode` the posterior's most likely latent state replaces its sample at every step (CSV suffix
`_latentmode`; the authors sample it), which makes the greedy policy a deterministic function of the frames.

Seeds: training uses env seeds below 100000 and the evaluations during training 1000000 and up, so the default
777000 gives tracks the agent never saw. Every episode has a seed of its own: the episodes run in waves of N (one
per sub-env), and episode e is reset with env seed S + e; each wave first sets torch's seed (the posterior samples
of the latent state) to the env seed of its first episode. With one env (`--num_envs 1`) episode e is therefore
exactly `--seed S+e --episodes 1`: any episode of a table can be replayed and watched alone.
results/carracing/report.py evaluates through `evaluate_episodes`, so its table and this command agree.

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

import numpy as np
import torch
from tqdm.auto import tqdm

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
    parser.add_argument("--sample", action="store_true",
                        help="draw actions from the actor's distribution instead of taking its mode")
    parser.add_argument("--latent_mode", action="store_true",
                        help="act on the posterior's most likely latent state instead of a sample of it")
    parser.add_argument("--best", action="store_true",
                        help="evaluate checkpoints/best.pt (the run's best evaluation during training), not latest.pt")
    parser.add_argument("--step", type=int, default=None,
                        help="evaluate the agent of the evaluation at this step (checkpoints/eval_<step>.pt, kept by "
                             "runs with keep_eval_agents), not latest.pt")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def evaluate_episodes(agent, config, episodes: int, seed: int = EVAL_SEED, num_envs: int | None = None,
                      record: bool = False, progress: bool = False, sample: bool = False,
                      latent_mode: bool = False) -> dict:
    """Greedy returns of `episodes` episodes, episode e on env seed `seed + e` (waves of num_envs sub-envs).
    With `sample`, the actions are drawn from the actor instead (its mode is the greedy action); with
    `latent_mode`, the agent acts on the posterior's most likely latent state, not a sample of it.

    Returns {"episodes": [0..], "seeds": [...], "returns": [...]} in episode order, plus "frames" of episode 0
    with `record`.
    """
    if episodes < 1:
        raise ValueError(f"--episodes must be at least 1, got {episodes}")
    if num_envs is not None and num_envs < 1:
        raise ValueError(f"--num_envs must be at least 1, got {num_envs}")
    num_envs = min(num_envs or config.num_envs, episodes)
    envs = make_vector_env(config, num_envs=num_envs)
    returns, frames = [], None
    bar = tqdm(total=episodes, disable=not progress, unit="episode", dynamic_ncols=True)
    try:
        for first in range(0, episodes, num_envs):
            torch.manual_seed(seed + first)
            stats = evaluate(agent, envs, min(num_envs, episodes - first), seed=seed + first,
                             record=record and first == 0, sample=sample, latent_mode=latent_mode)
            returns += stats["returns"]  # at most one episode per sub-env: in sub-env (= episode) order
            frames = stats.get("frames", frames)
            bar.update(len(stats["returns"]))
    finally:
        bar.close()
        envs.close()
    result = {"episodes": list(range(episodes)), "seeds": [seed + e for e in range(episodes)], "returns": returns}
    if record:
        result["frames"] = frames
    return result


def write_csv(result: dict, path: str | Path) -> Path:
    """One row per episode: episode, seed, return."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["episode", "seed", "return"])
        writer.writerows(zip(result["episodes"], result["seeds"], result["returns"]))
    return path


def run(args: argparse.Namespace) -> str:
    """Evaluate as the parsed options say; returns the summary line."""
    if args.episodes < 1:  # before loading the agent: the cheap check first
        raise ValueError(f"--episodes must be at least 1, got {args.episodes}")
    agent, config = load_agent(args.logdir, device=args.device, best=args.best, step=args.step)
    result = evaluate_episodes(agent, config, args.episodes, args.seed, args.num_envs, record=args.video is not None,
                               progress=not args.no_progress, sample=args.sample, latent_mode=args.latent_mode)
    which = "_best" if args.best else f"_step{args.step}" if args.step is not None else ""
    suffix = which + ("_sampled" if args.sample else "") + ("_latentmode" if args.latent_mode else "")
    csv_path = write_csv(result, args.csv or Path(args.logdir) / f"eval_{args.episodes}ep_seed{args.seed}{suffix}.csv")
    r = np.array(result["returns"])
    agent_name = " (best.pt)" if args.best else f" (the agent of step {args.step:,})" if args.step is not None else ""
    policy = (("sampled" if args.sample else "greedy") + " policy" + (" on the latent mode" if args.latent_mode else "")
              + agent_name)
    summary = (f"{config.env}: return {r.mean():.1f} ± {r.std():.1f} (min {r.min():.1f}, max {r.max():.1f}) over "
               f"{args.episodes} episodes, {policy}, env seeds {args.seed}..{args.seed + args.episodes - 1}; "
               f"per episode in {csv_path}")
    if args.video is not None:
        summary += f"; first episode in {save_video(result['frames'], args.video)}"
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

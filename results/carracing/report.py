"""Evaluate a finished CarRacing run and write the files committed under results/carracing/.

    python results/carracing/report.py RUN_LOGDIR OUT_DIR [--episodes 24]

Writes to OUT_DIR: metrics.csv (copied), learning_curve.png, eval_table.md (mean, std, min, max and every
episode's return, greedy policy, env seeds never used in training), eval_episodes.csv (one row per episode),
eval.gif (a short clip of the first evaluation
episode), command.txt (the training command and the hardware).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import torch  # noqa: E402

from dreamer_tutorial import evaluate  # noqa: E402
from dreamer_tutorial.train import load_agent, make_vector_env  # noqa: E402
from dreamer_tutorial.viz import plot_curves, save_video  # noqa: E402


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logdir")
    parser.add_argument("out")
    parser.add_argument("--episodes", type=int, default=24)
    parser.add_argument("--seed", type=int, default=777_000, help="evaluation env seeds (training used 0..)")
    parser.add_argument("--command", default=None,
                        help="the training command to record (default: the carracing preset's, with the run's steps)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    agent, config = load_agent(args.logdir)
    envs = make_vector_env(config, num_envs=min(config.num_envs, args.episodes))
    torch.manual_seed(0)
    stats = evaluate(agent, envs, episodes=args.episodes, seed=args.seed, record=True)
    envs.close()
    returns = np.array(stats["returns"])
    hardware = (torch.cuda.get_device_name() if torch.cuda.is_available()
                else f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)")
    lines = [f"Greedy policy, {len(returns)} episodes on CarRacing-v3 tracks from env seeds {args.seed}.. "
             f"(training used seeds < 100000), {hardware}.", "",
             "| mean | std | min | max |", "| --- | --- | --- | --- |",
             f"| {returns.mean():.1f} | {returns.std():.1f} | {returns.min():.1f} | {returns.max():.1f} |", "",
             "Per episode: " + ", ".join(f"{r:.1f}" for r in returns)]
    (out / "eval_table.md").write_text("\n".join(lines) + "\n")
    episode_rows = ["episode,return"] + [f"{i},{r:.2f}" for i, r in enumerate(returns)]
    (out / "eval_episodes.csv").write_text("\n".join(episode_rows) + "\n")
    shutil.copy(Path(args.logdir) / "metrics.csv", out / "metrics.csv")
    keys = ["episode_return", "eval_return", "image_loss", "reward_loss", "kl", "imag_return"]
    plot_curves(args.logdir, keys, smooth=3).savefig(out / "learning_curve.png", dpi=90)
    save_video(stats["frames"][:400:2], out / "eval.gif", fps=20)
    command = args.command or (f"python -m dreamer_tutorial.train --preset carracing --steps {config.steps} "
                               "--logdir <dir>")
    (out / "command.txt").write_text(
        f"{command}\n"
        f"python results/carracing/report.py <dir> {args.out} --episodes {args.episodes}\n"
        f"hardware: {hardware}; torch {torch.__version__}\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

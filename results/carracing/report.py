"""Evaluate a finished CarRacing run and write the files committed under results/carracing*/.

    python results/carracing/report.py RUN_LOGDIR OUT_DIR [--episodes 100] [--also OTHER_LOGDIR ...]
    python results/carracing/report.py RUN_LOGDIR OUT_DIR --curve_only --also OTHER_LOGDIR ...

Writes to OUT_DIR: metrics.csv (copied), learning_curve.png (with `--also`, the evaluation curves of the other
seeds' runs beside this one), eval_table.md (mean, std, min, max, how many episodes fell below 800 and reached
900, greedy policy, env seeds never used in training), eval_episodes.csv (episode, seed, return: one row per
episode, from `dreamer_tutorial.evaluate.evaluate_episodes`, so `python -m dreamer_tutorial.evaluate --seed
777000+e --episodes 1` replays episode e), eval_best.gif and eval_worst.gif (the best and the worst episode,
replayed), command.txt (the training command, this report's command and the hardware; with `--record FILE`,
FILE's text as it is, for a run of several sittings whose commands you write down yourself). With `--curve_only`,
only metrics.csv and learning_curve.png (to add another seed's curve to a report without evaluating again).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import torch  # noqa: E402

from dreamer_tutorial.bench import cpu_model  # noqa: E402
from dreamer_tutorial.evaluate import EVAL_SEED, evaluate_episodes, write_csv  # noqa: E402
from dreamer_tutorial.train import BEST, KEPT, load_agent, load_checkpoint  # noqa: E402
from dreamer_tutorial.viz import load_metrics, plot_curves, save_video  # noqa: E402


def _evaluate_chunk(logdir: str, episodes: int, seed: int, best: bool, latent_mode: bool, step: int | None) -> dict:
    torch.set_num_threads(1)
    agent, config = load_agent(logdir, best=best, step=step)
    return evaluate_episodes(agent, config, episodes, seed=seed, progress=seed == EVAL_SEED, latent_mode=latent_mode)


def evaluate_in_parallel(logdir: str, episodes: int, seed: int, jobs: int, best: bool = False,
                         latent_mode: bool = False, step: int | None = None) -> dict:
    """`evaluate_episodes` split into `jobs` processes by episode (one env each). Episode e is seeded with
    seed + e in any split, so the rows are the same as one process running them all."""
    size = -(-episodes // jobs)  # ceil
    chunks = [(start, min(size, episodes - start)) for start in range(0, episodes, size)]
    with ProcessPoolExecutor(len(chunks), mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = list(pool.map(_evaluate_chunk, *zip(*[(logdir, n, seed + start, best, latent_mode, step)
                                                       for start, n in chunks])))
    return {"episodes": list(range(episodes)), "seeds": [seed + e for e in range(episodes)],
            "returns": [r for part in parts for r in part["returns"]]}


def draw_curves(logdir: str, others: list[str], out: Path) -> matplotlib.figure.Figure:
    """Copy the run's metrics.csv to `out` and draw learning_curve.png; the evaluation panel also shows the
    evaluation curves of `others` (other runs' logdirs or results folders, labelled with their folder names), and
    the run's own curve is labelled with the name of `out`, the folder it is published as (its logdir's name is
    a scratch name the reader never sees)."""
    shutil.copy(Path(logdir) / "metrics.csv", out / "metrics.csv")
    keys = ["episode_return", "eval_return", "image_loss", "reward_loss", "kl", "imag_return"]
    fig = plot_curves(logdir, keys, smooth=3)
    if others:
        ax = fig.axes[keys.index("eval_return")]
        ax.lines[0].set_label(out.name)
        for other in others:
            metrics = load_metrics(other)
            rows = ~np.isnan(metrics["eval_return"])
            ax.plot(metrics["step"][rows], metrics["eval_return"][rows], "--", label=Path(other).name)
        ax.legend(fontsize=7)
    fig.savefig(out / "learning_curve.png", dpi=90)
    return fig


def first_reach(metrics: dict[str, np.ndarray], level: float, action_repeat: int) -> str:
    """When the evaluation curve first reached `level`: policy steps, frames, updates and wall-clock minutes (the
    `minutes` column, summed over sittings; runs of package 0.2.0 did not log it), or "never"."""
    evals = np.flatnonzero(metrics["eval_return"] >= level)
    if not len(evals):
        return "never"
    row, step = evals[0], int(metrics["step"][evals[0]])
    before = np.flatnonzero((metrics["step"] <= step) & ~np.isnan(metrics["updates"]))
    updates = f", {int(metrics['updates'][before[-1]]):,} updates" if len(before) else ""
    minutes = metrics.get("minutes", np.full(len(metrics["step"]), np.nan))[row]
    clock = f", {minutes:.0f} min" if np.isfinite(minutes) else ""
    return f"step {step:,} ({step * action_repeat:,} frames{updates}{clock})"


def command_record(args: argparse.Namespace, steps: int, hardware: str) -> str:
    """The text of command.txt: `args.record`'s file as it is, or the training command (`args.command`, default the
    carracing preset's), this report's command and the hardware, one line each."""
    if args.record:
        return Path(args.record).read_text()
    command = args.command or f"python -m dreamer_tutorial.train --preset carracing --steps {steps} --logdir <dir>"
    return (f"{command}\n"
            f"python results/carracing/report.py <dir> {args.out} --episodes {args.episodes} --jobs {args.jobs}"
            f"{' --best' if args.best else ''}{f' --step {args.step}' if args.step is not None else ''}"
            f"{' --latent_mode' if args.latent_mode else ''}"
            f"{' --also ' + ' '.join(args.also) if args.also else ''}\n"
            f"hardware: {hardware}; torch {torch.__version__}\n")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logdir")
    parser.add_argument("out")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=1, help="evaluation processes (one env and thread each)")
    parser.add_argument("--also", nargs="*", default=[], help="other seeds' logdirs: their eval curves too")
    parser.add_argument("--seed", type=int, default=EVAL_SEED, help="evaluation env seeds (training used 0..)")
    parser.add_argument("--command", default=None,
                        help="the training command to record (default: the carracing preset's, with the run's steps)")
    parser.add_argument("--record", default=None,
                        help="a text file to copy to command.txt as it is (commands of several sittings, hardware), "
                             "instead of the lines report.py writes")
    parser.add_argument("--best", action="store_true",
                        help="evaluate the run's checkpoints/best.pt (its best evaluation in training), not latest.pt")
    parser.add_argument("--step", type=int, default=None,
                        help="evaluate the agent of the run's evaluation at this step (checkpoints/eval_<step>.pt, "
                             "kept with keep_eval_agents), not latest.pt")
    parser.add_argument("--latent_mode", action="store_true",
                        help="act on the posterior's most likely latent state, not a sample (evaluate --latent_mode)")
    parser.add_argument("--curve_only", action="store_true",
                        help="only copy metrics.csv and draw learning_curve.png (no evaluation)")
    args = parser.parse_args(argv)
    if args.record and not Path(args.record).is_file():
        parser.error(f"--record {args.record}: expected a text file to copy to command.txt; there is none")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.curve_only:
        draw_curves(args.logdir, args.also, out)
        return 0
    try:
        agent, config = load_agent(args.logdir, best=args.best, step=args.step)
    except ValueError as error:
        parser.error(str(error))
    result = evaluate_in_parallel(args.logdir, args.episodes, args.seed, args.jobs, args.best, args.latent_mode,
                                  args.step)
    returns = np.array(result["returns"])
    hardware = (torch.cuda.get_device_name() if torch.cuda.is_available()
                else f"CPU ({cpu_model()}, {os.cpu_count()} cores), evaluation {args.jobs} process(es) x 1 thread")
    which = ""
    if args.best:
        step = load_checkpoint(Path(args.logdir) / "checkpoints" / BEST)["counters"]["step"]
        which = f"The agent of best.pt (step {step:,}, the run's best evaluation during training). "
    elif args.step is not None:
        which = f"The agent of the run's evaluation at step {args.step:,} (checkpoints/{KEPT.format(step=args.step)}). "
    policy = "Greedy policy on the posterior's most likely latent state" if args.latent_mode else "Greedy policy"
    lines = [f"{which}{policy}, {len(returns)} episodes on CarRacing-v3 tracks from env seeds {args.seed}.."
             f"{args.seed + len(returns) - 1} (training used seeds < 100000), {hardware}.", "",
             "| episodes | mean | std | min | max | below 800 | 900 or more |",
             "| --- | --- | --- | --- | --- | --- | --- |",
             f"| {len(returns)} | {returns.mean():.1f} | {returns.std():.1f} | {returns.min():.1f} | "
             f"{returns.max():.1f} | {(returns < 800).sum()} | {(returns >= 900).sum()} |", "",
             "Per episode (`eval_episodes.csv`): " + ", ".join(f"{r:.1f}" for r in returns), ""]
    metrics = load_metrics(args.logdir)
    lines += [f"Training's evaluation curve ({config.eval_episodes} greedy episodes every {config.eval_every:,} "
              f"policy steps) first at {level} or more: {first_reach(metrics, level, config.action_repeat)}."
              for level in (800, 900)]
    (out / "eval_table.md").write_text("\n".join(lines) + "\n")
    write_csv(result, out / "eval_episodes.csv")
    for name, episode in (("best", int(returns.argmax())), ("worst", int(returns.argmin()))):
        again = evaluate_episodes(agent, config, 1, seed=args.seed + episode, num_envs=1, record=True,
                                  latent_mode=args.latent_mode)
        if config.num_envs == 1 and again["returns"][0] != returns[episode]:
            print(f"warning: the replay of episode {episode} scored {again['returns'][0]:.1f}, "
                  f"not {returns[episode]:.1f}")
        save_video(again["frames"][::4], out / f"eval_{name}.gif", fps=15)
        print(f"{name} episode {episode} (env seed {args.seed + episode}): {returns[episode]:.1f} -> "
              f"eval_{name}.gif")
    draw_curves(args.logdir, args.also, out)
    (out / "command.txt").write_text(command_record(args, config.steps, hardware))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

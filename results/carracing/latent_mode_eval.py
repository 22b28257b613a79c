"""Greedy evaluation of finished runs on the posterior's most likely latent state and with it sampled, on the same
tracks, in many processes: one CSV per run and way of acting.

    python results/carracing/latent_mode_eval.py OUT LOGDIR... [--episodes 100] [--jobs 16] [--seed 777000]

The authors' agent samples the posterior z_t ~ q(z_t | h_t, x_t) when it acts, in evaluation too; with
`latent_mode` (`Dreamer.policy`) it takes each categorical's most likely class instead, so the greedy driver is
a deterministic function of the frames. For every LOGDIR (a run, or a copy made by slim_checkpoint.py) this writes
OUT/<name>_latentmode.csv, then, after every run's latent-mode table, OUT/<name>_sampled.csv: the same evaluation
as report.py's table (episode e on env seed S + e, torch seeded with it), so a call cut short by a time limit
still brings back the new figures first. Each line printed is one table's mean, std, min and max.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import evaluate_in_parallel  # noqa: E402

from dreamer_tutorial.evaluate import EVAL_SEED, write_csv  # noqa: E402


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="latent_mode_eval.py", description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("logdirs", nargs="+")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=16, help="evaluation processes (one env and thread each)")
    parser.add_argument("--seed", type=int, default=EVAL_SEED)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for latent_mode in (True, False):
        for logdir in args.logdirs:
            start = time.perf_counter()
            result = evaluate_in_parallel(logdir, args.episodes, args.seed, args.jobs, latent_mode=latent_mode)
            name = f"{Path(logdir).name}_{'latentmode' if latent_mode else 'sampled'}"
            write_csv(result, out / f"{name}.csv")
            r = np.array(result["returns"])
            print(f"{name}: {r.mean():.1f} ± {r.std():.1f} (min {r.min():.1f}, max {r.max():.1f}, below 800 "
                  f"{(r < 800).sum()}, 900 or more {(r >= 900).sum()}) over {len(r)} tracks from seed {args.seed}, "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

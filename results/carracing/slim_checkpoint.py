"""Copy a run's logdir without its replay buffer, so that it can be evaluated on another machine.

    python results/carracing/slim_checkpoint.py RUN_LOGDIR OUT_LOGDIR

A CarRacing checkpoint holds the replay buffer (1.1 GB at 90k policy steps) beside the agent (29 MB of weights
and optimiser states). OUT_LOGDIR gets checkpoints/latest.pt with everything but the replay buffer, the run's
best.pt if it has one, and its metrics.csv: enough for `load_agent`, `python -m dreamer_tutorial.evaluate` and
`report.py`, not for `--resume` (`gpu_run.sh eval` evaluates such a copy on the device machine's 16 cores).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from dreamer_tutorial.train import BEST, CHECKPOINT, load_latest, save_checkpoint


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    source, target = Path(argv[0]), Path(argv[1])
    state = load_latest(source)
    del state["replay"]
    save_checkpoint(target / "checkpoints" / CHECKPOINT, state)
    shutil.copy(source / "metrics.csv", target / "metrics.csv")
    if (source / "checkpoints" / BEST).exists():  # already without replay
        shutil.copy(source / "checkpoints" / BEST, target / "checkpoints" / BEST)
    size = (target / "checkpoints" / CHECKPOINT).stat().st_size / 2**20
    print(f"{target}: step {state['counters']['step']:,}, checkpoint without replay {size:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

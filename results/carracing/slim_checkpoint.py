"""Copy a run's logdir without its replay buffer and optimiser moments, so that it can be evaluated elsewhere.

    python results/carracing/slim_checkpoint.py RUN_LOGDIR OUT_LOGDIR

A CarRacing checkpoint holds the replay buffer (1.1 GB at 90k policy steps) beside the agent (29 MB: 10 MB of
weights, the rest Adam's two moments per weight). OUT_LOGDIR gets checkpoints/latest.pt and the run's best.pt, if
it has one, with the weights, counters and config but neither the replay buffer nor the optimisers' per-weight
state (their hyperparameters stay), and the run's metrics.csv: enough for `load_agent`,
`python -m dreamer_tutorial.evaluate` and `report.py`, not for `--resume` (`gpu_run.sh eval` evaluates such
copies on the device machine's 16 cores; a call carries at most 64 MiB).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from dreamer_tutorial.train import BEST, CHECKPOINT, load_checkpoint, load_latest, save_checkpoint


def without_moments(state: dict) -> dict:
    """The checkpoint `state` with every optimiser's per-weight state emptied (as before its first step)."""
    optimizers = {name: {**opt, "state": {}} for name, opt in state["agent"]["optimizers"].items()}
    return {**state, "agent": {**state["agent"], "optimizers": optimizers}}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    source, target = Path(argv[0]), Path(argv[1])
    state = load_latest(source)
    del state["replay"]
    save_checkpoint(target / "checkpoints" / CHECKPOINT, without_moments(state))
    shutil.copy(source / "metrics.csv", target / "metrics.csv")
    if (source / "checkpoints" / BEST).exists():  # already without replay
        save_checkpoint(target / "checkpoints" / BEST, without_moments(load_checkpoint(source / "checkpoints" / BEST)),
                        keep_previous=False)
    size = (target / "checkpoints" / CHECKPOINT).stat().st_size / 2**20
    print(f"{target}: step {state['counters']['step']:,}, checkpoint without replay and moments {size:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""results/carracing/action_stats.py: the policy's actions per window of steps, read from a run's replay."""

import numpy as np
from script_loader import load_script

from dreamer_tutorial import Config
from dreamer_tutorial.replay import SequenceReplay
from dreamer_tutorial.train import CHECKPOINT, save_checkpoint

action_stats = load_script("results/carracing/action_stats.py")


def test_a_wrapped_replay_is_read_oldest_first_and_labelled_with_the_steps_it_holds(tmp_path):
    # 30 throttle-axis steps into a 20-row replay: rows 0..9 are overwritten by steps 20..29. Step s steers s / 100
    # and earns a tile when s >= 25, so each window's mean steer and tile fraction tell which steps it read.
    replay = SequenceReplay(20, (4, 4, 3), 2)
    for s in range(30):
        replay.add(np.zeros((4, 4, 3), np.uint8), np.array([s / 100, 0.5]), float(s >= 25), False, False)
    state = {"replay": replay.state_dict(), "config": Config.preset("carracing_cpu").to_dict(),
             "counters": {"step": 30}}
    save_checkpoint(tmp_path / "checkpoints" / CHECKPOINT, state)
    rows = action_stats.action_table(str(tmp_path), window=5)
    assert "the replay holds the last 20 steps of 30" in rows[0]
    table = [row.split(" | ") for row in rows[4:]]
    assert [r[0] for r in table] == ["| 0.01k-0.015k", "| 0.015k-0.02k", "| 0.02k-0.025k", "| 0.025k-0.03k"]
    assert [float(r[1]) for r in table] == [0.12, 0.17, 0.22, 0.27]  # mean steer of steps 10-14, 15-19, ...
    assert [float(r[-1].rstrip(" |")) for r in table] == [0, 0, 0, 1]

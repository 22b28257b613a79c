"""results/carracing/report.py: when the evaluation curve first reached a level, read from a run's metrics."""

import importlib.util
from pathlib import Path

import numpy as np

spec = importlib.util.spec_from_file_location("report", Path(__file__).parents[1] / "results/carracing/report.py")
report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report)

nan = np.nan


def metrics(with_minutes=True):
    # the trainer's rows: a log row (updates, minutes) then, at evaluation steps, an eval row (eval_return, minutes)
    m = {"step": np.array([5000, 5000, 10000, 10000, 15000, 15000.]),
         "updates": np.array([500, nan, 1500, nan, 2500, nan]),
         "eval_return": np.array([nan, 120.0, nan, 805.0, nan, 930.0]),
         "minutes": np.array([10.0, 11.0, 20.0, 21.5, 30.0, 31.0])}
    if not with_minutes:
        del m["minutes"]
    return m


def test_first_reach_names_the_first_evaluation_at_the_level_with_updates_frames_and_minutes():
    assert report.first_reach(metrics(), 800, action_repeat=2) == "step 10,000 (20,000 frames, 1,500 updates, 22 min)"
    assert report.first_reach(metrics(), 900, action_repeat=2) == "step 15,000 (30,000 frames, 2,500 updates, 31 min)"
    assert report.first_reach(metrics(), 950, action_repeat=2) == "never"


def test_first_reach_of_a_run_without_the_minutes_column():
    assert report.first_reach(metrics(False), 100, action_repeat=4) == "step 5,000 (20,000 frames, 500 updates)"

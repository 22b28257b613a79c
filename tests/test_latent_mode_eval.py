"""results/carracing/latent_mode_eval.py: both tables of each run, in processes, equal to the evaluation CLI's."""

import csv
import subprocess
import sys

from script_loader import ROOT

from dreamer_tutorial import Config, train
from dreamer_tutorial.evaluate import main as evaluate_main


def returns(path):
    with open(path, newline="") as f:
        return [(row["seed"], row["return"]) for row in csv.DictReader(f)]


def test_each_table_is_the_one_the_evaluation_cli_writes(tmp_path):
    logdir = tmp_path / "run"
    train(Config.preset("debug", steps=300, prefill=100, eval_every=300, eval_episodes=1, logdir=str(logdir)),
          progress=False)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(ROOT / "results/carracing/latent_mode_eval.py"), str(out), str(logdir),
                           "--episodes", "3", "--jobs", "2", "--seed", "40"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["run_latentmode", "run_sampled"]  # the new table first
    assert all("over 3 tracks from seed 40" in line for line in lines)
    for flags, name in (([], "sampled"), (["--latent_mode"], "latentmode")):
        assert evaluate_main(["--logdir", str(logdir), "--episodes", "3", "--seed", "40", "--csv",
                              str(tmp_path / f"cli_{name}.csv"), "--no-progress", *flags]) == 0
        assert returns(out / f"run_{name}.csv") == returns(tmp_path / f"cli_{name}.csv"), name
    assert returns(out / "run_sampled.csv") != returns(out / "run_latentmode.csv")

"""results/carracing/latent_mode_eval.py: both tables of each run, in processes, equal to the evaluation CLI's;
latent_gap.py: its two replays are those episodes, and what it records beside them is the actor at the mode."""

import csv
import subprocess
import sys

import numpy as np
import pytest
from script_loader import ROOT, load_script

from dreamer_tutorial import Config, train
from dreamer_tutorial.evaluate import main as evaluate_main
from dreamer_tutorial.train import load_agent

latent_gap = load_script("results/carracing/latent_gap.py")


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("latent") / "run"
    train(Config.preset("debug", steps=300, prefill=100, eval_every=300, eval_episodes=1, logdir=str(logdir)),
          progress=False)
    return logdir


def returns(path):
    with open(path, newline="") as f:
        return [(row["seed"], row["return"]) for row in csv.DictReader(f)]


def test_each_table_is_the_one_the_evaluation_cli_writes(logdir, tmp_path):
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


def test_latent_gap_replays_the_tables_episodes_and_records_the_actor_at_the_mode(logdir, tmp_path):
    for flags, latent_mode in (([], False), (["--latent_mode"], True)):
        assert evaluate_main(["--logdir", str(logdir), "--episodes", "1", "--seed", "41", "--csv",
                              str(tmp_path / "one.csv"), "--no-progress", *flags]) == 0
        agent, config = load_agent(logdir)
        recorder, rewards = latent_gap.replay(agent, config, 41, latent_mode)
        assert [("41", str(rewards.sum()))] == [(s, str(float(r))) for s, r in returns(tmp_path / "one.csv")]
        assert len(rewards) == len(recorder.actions) == 50  # one per step of a PointReach episode
        off_mode, actions, at_mode = map(np.array, (recorder.off_mode, recorder.actions, recorder.mode_actions))
        if latent_mode:  # acting on the mode: nothing off it, the action taken is the actor at the mode
            assert off_mode.max() == 0
            np.testing.assert_allclose(actions, at_mode, atol=1e-6)
        else:  # sampled: some categoricals leave the mode, and there the action differs
            assert off_mode.max() > 0 and np.abs(actions - at_mode).max() > 1e-3
            assert 0 <= off_mode.min() and off_mode.max() <= config.stoch

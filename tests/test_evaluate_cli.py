"""The evaluation CLI: per-episode CSV equal to an independent re-evaluation, summary line, video, error paths."""

import csv
import subprocess
import sys

import numpy as np
import pytest
import torch

from dreamer_tutorial import Config, evaluate, train
from dreamer_tutorial.evaluate import EVAL_SEED, main
from dreamer_tutorial.train import load_agent, make_vector_env


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("run")
    train(Config.preset("debug", steps=300, prefill=100, eval_every=300, eval_episodes=1, logdir=str(logdir)),
          progress=False)
    return logdir


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_csv_matches_an_independent_evaluation(run_dir, capsys):
    assert main(["--logdir", str(run_dir), "--episodes", "5", "--num_envs", "2", "--seed", "123",
                 "--no-progress"]) == 0
    rows = read_csv(run_dir / "eval_5ep_seed123.csv")
    assert [int(r["episode"]) for r in rows] == [0, 1, 2, 3, 4]
    assert [r["seed"] for r in rows] == ["123", "124", "125", "126", "127"]  # episode e on env seed 123 + e

    # Independently: the same agent, 2 envs; waves of 2 episodes, each wave with torch seed = its first env seed.
    agent, config = load_agent(run_dir)
    envs = make_vector_env(config, num_envs=2)
    by_episode = {}
    for first in (0, 2, 4):
        torch.manual_seed(123 + first)
        wave = evaluate(agent, envs, min(2, 5 - first), seed=123 + first)["returns"]
        by_episode.update({first + i: r for i, r in enumerate(wave)})
    envs.close()
    expected = {"returns": [by_episode[e] for e in range(5)]}
    np.testing.assert_array_equal([float(r["return"]) for r in rows], expected["returns"])
    assert all(-50 * np.sqrt(8) < by_episode[e] < 0 for e in range(5))  # 50 steps of minus a distance <= 2 sqrt 2

    out = capsys.readouterr().out.strip()
    returns = np.array(expected["returns"])
    assert out.startswith(f"dreamer_tutorial/PointReach-v0: return {returns.mean():.1f} ± {returns.std():.1f} "
                          f"(min {returns.min():.1f}, max {returns.max():.1f}) over 5 episodes")
    assert str(run_dir / "eval_5ep_seed123.csv") in out and len(out.splitlines()) == 1


def test_default_seed_csv_path_and_video(run_dir, tmp_path, capsys):
    video, table = tmp_path / "first.gif", tmp_path / "out" / "returns.csv"
    assert main(["--logdir", str(run_dir), "--episodes", "2", "--video", str(video), "--csv", str(table),
                 "--no-progress"]) == 0
    rows = read_csv(table)
    assert [r["seed"] for r in rows] == [str(EVAL_SEED), str(EVAL_SEED + 1)]  # the run's num_envs is 1
    assert EVAL_SEED == 777_000  # the seed results/carracing/report.py evaluates on: the numbers agree
    # With one env, episode 1 alone (--seed S+1 --episodes 1) is the same episode as row 1.
    again = tmp_path / "again.csv"
    assert main(["--logdir", str(run_dir), "--episodes", "1", "--seed", str(EVAL_SEED + 1), "--csv", str(again),
                 "--no-progress"]) == 0
    assert read_csv(again)[0]["return"] == rows[1]["return"]
    import imageio.v2 as imageio

    frames = imageio.mimread(video)
    assert len(frames) == 51 and frames[0].shape[:2] == (64, 64)  # reset frame + 50 steps of PointReach
    assert f"first episode in {video}" in capsys.readouterr().out


def test_sampled_policy_has_its_own_csv_and_differs_from_greedy(run_dir, capsys):
    args = ["--logdir", str(run_dir), "--episodes", "3", "--seed", "321", "--no-progress"]
    assert main(args) == 0 and main(args + ["--sample"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "greedy policy" in out[0] and "sampled policy" in out[1] and "_sampled.csv" in out[1]
    greedy, sampled = read_csv(run_dir / "eval_3ep_seed321.csv"), read_csv(run_dir / "eval_3ep_seed321_sampled.csv")
    assert [r["seed"] for r in sampled] == [r["seed"] for r in greedy]  # the same tracks
    assert [r["return"] for r in sampled] != [r["return"] for r in greedy]  # other actions, other returns


def test_latent_mode_has_its_own_csv_and_does_not_depend_on_the_rng(run_dir, capsys, tmp_path):
    # On the latent mode the greedy policy is a function of the frames: other waves (torch seeds) give the same rows.
    args = ["--logdir", str(run_dir), "--episodes", "4", "--seed", "55", "--latent_mode", "--no-progress"]
    assert main(args) == 0 and main(args + ["--num_envs", "2", "--csv", str(tmp_path / "waves.csv")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "greedy policy on the latent mode" in out[0] and "eval_4ep_seed55_latentmode.csv" in out[0]
    one, two = read_csv(run_dir / "eval_4ep_seed55_latentmode.csv"), read_csv(tmp_path / "waves.csv")
    assert [r["seed"] for r in one] == [r["seed"] for r in two] == ["55", "56", "57", "58"]
    # equal up to float rounding (one env per wave vs a batch of two)
    np.testing.assert_allclose([float(r["return"]) for r in one], [float(r["return"]) for r in two], rtol=1e-6)
    agent, config = load_agent(run_dir)
    envs = make_vector_env(config, num_envs=1)
    torch.manual_seed(999)
    again = evaluate(agent, envs, 1, seed=57, latent_mode=True)["returns"][0]
    envs.close()
    assert again == float(one[2]["return"])


def test_errors_are_one_line_and_exit_2(run_dir, tmp_path, capsys):
    assert main(["--logdir", str(tmp_path / "nothing"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no checkpoint in") and len(err.splitlines()) == 1

    assert main(["--logdir", str(run_dir), "--episodes", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --episodes must be at least 1, got 0"

    damaged = tmp_path / "damaged"
    (damaged / "checkpoints").mkdir(parents=True)
    (damaged / "checkpoints" / "latest.pt").write_bytes(b"\x00garbage" * 100)
    assert main(["--logdir", str(damaged)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and str(damaged / "checkpoints" / "latest.pt") in err
    assert "damaged" in err and len(err.splitlines()) == 1


def test_python_dash_m_runs_the_cli(tmp_path):
    done = subprocess.run([sys.executable, "-m", "dreamer_tutorial.evaluate", "--logdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip().startswith("error: no checkpoint in"), done.stderr


def test_importing_the_cli_keeps_the_evaluate_function_callable(run_dir):
    import dreamer_tutorial

    agent, config = load_agent(run_dir)
    envs = make_vector_env(config, num_envs=1)
    torch.manual_seed(0)
    result = dreamer_tutorial.evaluate(agent, envs, 1, seed=5)  # the module now, calling the function
    envs.close()
    assert set(result) == {"mean", "std", "min", "max", "returns"} and len(result["returns"]) == 1


def test_best_evaluates_best_pt_into_its_own_csv(run_dir, capsys):
    # the fixture's run evaluated once, at its end: best.pt holds the same agent as latest.pt
    assert main(["--logdir", str(run_dir), "--episodes", "2", "--best", "--no-progress"]) == 0
    assert "greedy policy (best.pt)" in capsys.readouterr().out
    assert main(["--logdir", str(run_dir), "--episodes", "2", "--no-progress"]) == 0
    best, latest = (read_csv(run_dir / f"eval_2ep_seed{EVAL_SEED}{s}.csv") for s in ("_best", ""))
    assert best == latest and len(best) == 2


def test_step_evaluates_the_agent_kept_at_that_evaluation_into_its_own_csv(tmp_path, capsys):
    logdir = tmp_path / "kept"
    train(Config.preset("debug", steps=200, prefill=100, eval_every=100, eval_episodes=1, keep_eval_agents=True,
                        video_every_eval=False, logdir=str(logdir)), progress=False)
    args = ["--logdir", str(logdir), "--episodes", "2", "--seed", "40", "--num_envs", "1", "--no-progress"]
    assert main(args + ["--step", "100"]) == 0
    assert "greedy policy (the agent of step 100)" in capsys.readouterr().out
    rows = read_csv(logdir / "eval_2ep_seed40_step100.csv")
    agent, config = load_agent(logdir, step=100)  # independently: that agent, the same episodes
    envs = make_vector_env(config, num_envs=1)
    expected = []
    for e in range(2):
        torch.manual_seed(40 + e)
        expected += evaluate(agent, envs, 1, seed=40 + e)["returns"]
    envs.close()
    np.testing.assert_array_equal([float(r["return"]) for r in rows], expected)
    assert main(args + ["--step", "150"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no agent of step 150") and "100, 200" in err and len(err.splitlines()) == 1

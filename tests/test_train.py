"""The training system: evaluation, checkpoints (atomic, resumable, interrupt-safe), logging, CLI, CarRacing."""

import csv
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from script_loader import load_script

from dreamer_tutorial import Config, evaluate, make_env, train
from dreamer_tutorial.agent import Dreamer
from dreamer_tutorial.train import (
    CHECKPOINT,
    _Trainer,
    kept_steps,
    load_agent,
    load_checkpoint,
    make_vector_env,
    save_checkpoint,
)
from dreamer_tutorial.train.__main__ import main


def tiny(tmp_path, **overrides):
    values = dict(device="cpu", steps=300, prefill=100, train_every=10, eval_every=10_000, eval_episodes=2,
                  log_every=100, video_every_eval=False, logdir=str(tmp_path / "run"))
    values.update(overrides)
    return Config.preset("debug", **values)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_train_returns_metrics_and_writes_the_logdir(tmp_path):
    config = tiny(tmp_path, video_every_eval=True)
    result = train(config, progress=False)
    assert result["steps"] == 300 and result["updates"] == (300 - 100) // 10
    assert len(result["eval_returns"]) == 2 and np.isfinite(result["eval_return"])
    logdir = tmp_path / "run"
    rows = read_csv(logdir / "metrics.csv")
    steps = [int(r["step"]) for r in rows]
    assert steps == sorted(steps) and steps[-1] == 300
    assert any(r["model_loss"] for r in rows) and any(r["eval_return"] for r in rows)
    assert list(logdir.glob("events.out.tfevents.*")), "no TensorBoard event file"
    assert (logdir / "checkpoints" / CHECKPOINT).exists()
    assert list((logdir / "videos").glob("policy_*.mp4")) and list((logdir / "videos").glob("openloop_*.png"))


def test_resume_restores_counters_replay_and_optimizers_then_continues(tmp_path):
    config = tiny(tmp_path)
    first = train(config, progress=False)
    saved = load_checkpoint(tmp_path / "run" / "checkpoints" / CHECKPOINT)
    assert saved["counters"]["step"] == 300 and saved["counters"]["updates"] == first["updates"] == 20

    resumed = _Trainer(config.replace(steps=500), None, resume=True, progress=False)
    assert (resumed.step, resumed.updates) == (300, 20)
    assert len(resumed.replay) == int(saved["replay"]["filled"].sum()) > 0
    opt_now = resumed.agent.model_opt.state_dict()
    opt_saved = saved["agent"]["optimizers"]["model"]
    assert opt_now["state"][0]["step"] == opt_saved["state"][0]["step"] == 20
    assert torch.equal(opt_now["state"][0]["exp_avg"], opt_saved["state"][0]["exp_avg"])
    for name, value in resumed.agent.state_dict().items():  # weights, and extra state such as update counters
        expected = saved["agent"]["modules"][name]
        assert torch.equal(value, expected) if torch.is_tensor(value) else value == expected, name
    result = resumed.run()
    assert result["steps"] == 500 and result["updates"] == (500 - 100) // 10
    steps = [int(r["step"]) for r in read_csv(tmp_path / "run" / "metrics.csv")]
    assert steps[0] == 100 and steps[-1] == 500 and steps == sorted(steps), "the CSV must be appended, not restarted"


def test_starting_a_new_run_over_an_existing_one_is_an_error(tmp_path):
    config = tiny(tmp_path, steps=120)
    train(config, progress=False)
    with pytest.raises(ValueError, match="resume"):
        train(config, progress=False)


class _Interrupting(gym.Wrapper):
    """Raises KeyboardInterrupt (a Ctrl-C) at the given global step count."""

    calls = 0

    def __init__(self, env, at):
        super().__init__(env)
        self.at = at

    def step(self, action):
        _Interrupting.calls += 1
        if _Interrupting.calls == self.at:
            raise KeyboardInterrupt
        return self.env.step(action)


def test_an_interrupted_run_keeps_its_state_and_resumes_where_it_stopped(tmp_path):
    config = tiny(tmp_path, steps=400, checkpoint_minutes=60.0)
    _Interrupting.calls = 0
    with pytest.raises(KeyboardInterrupt):
        train(config, env_fn=lambda: _Interrupting(make_env(config.env), at=251), progress=False)
    saved = load_checkpoint(tmp_path / "run" / "checkpoints" / CHECKPOINT)
    # 250 env.step calls plus the autoreset steps (one per finished 50-step episode) that replace env.step
    step = saved["counters"]["step"]
    assert 250 <= step <= 256 and saved["counters"]["updates"] == (step - 100) // 10
    result = train(config, resume=True, progress=False)
    assert result["steps"] == 400 and result["updates"] == 30  # continued from there, did not start again
    steps = [int(r["step"]) for r in read_csv(tmp_path / "run" / "metrics.csv")]
    assert steps == sorted(steps) and steps[:2] == [100, 200]


def test_a_crash_while_writing_a_checkpoint_keeps_the_last_good_one(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / CHECKPOINT
    save_checkpoint(path, {"step": torch.tensor(1)})

    def crashing_save(obj, f):
        with open(f, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": torch.tensor(2)})
    assert load_checkpoint(path)["step"].item() == 1
    assert list(path.parent.iterdir()) == [path], "the partial temporary file must be removed"


class _NanReward(gym.Wrapper):
    """Every 7th reward is NaN: the reward loss of any batch containing it is not finite."""

    def __init__(self, env):
        super().__init__(env)
        self.count = 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.count += 1
        return obs, float("nan") if self.count % 7 == 0 else reward, terminated, truncated, info


def test_nonfinite_updates_are_skipped_counted_and_logged(tmp_path):
    config = tiny(tmp_path, steps=250)
    trainer = _Trainer(config, lambda: _NanReward(make_env(config.env)), resume=False, progress=False)
    result = trainer.run()
    assert result["nonfinite_updates"] == result["updates"] > 0  # every batch of 8 steps holds a NaN reward
    assert all(torch.isfinite(p).all() for p in trainer.agent.parameters()), "NaN reached the weights"
    rows = read_csv(tmp_path / "run" / "metrics.csv")
    assert float(rows[-1]["nonfinite_updates"]) == result["nonfinite_updates"]


def test_evaluate_runs_exactly_the_requested_episodes_greedily(tmp_path):
    config = tiny(tmp_path, num_envs=3)
    envs = make_vector_env(config)
    agent = Dreamer(config, envs.single_observation_space, envs.single_action_space)
    # The posterior latent is sampled even when acting greedily, so the torch RNG is seeded too.
    torch.manual_seed(0)
    first = evaluate(agent, envs, episodes=4, seed=11)
    torch.manual_seed(0)
    second = evaluate(agent, envs, episodes=4, seed=11)
    assert len(first["returns"]) == 4
    assert first["returns"] == second["returns"], "greedy evaluation with the same seeds must be deterministic"
    assert first["min"] <= first["mean"] <= first["max"]
    single = evaluate(agent, make_env(config.env), episodes=2, seed=11, record=True)
    assert len(single["returns"]) == 2 and single["frames"].shape == (51, 64, 64, 3)  # reset frame + 50 steps
    with pytest.raises(ValueError, match="episodes"):
        evaluate(agent, envs, episodes=0)


def test_cli_help_and_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--preset" in out and "--resume" in out and "imagination horizon" in out
    for argv, message in ((["--preset", "nope"], "valid presets"), (["--bogus", "1"], "unrecognized"),
                          (["--preset", "debug", "--kl_balance", "2"], "kl_balance"),
                          (["--preset", "debug", "--steps", "ten"], "invalid int")):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err


def test_cli_trains_and_resumes(tmp_path, capsys):
    args = ["--preset", "debug", "--device", "cpu", "--steps", "150", "--prefill", "100", "--eval_episodes", "1",
            "--video_every_eval", "false", "--logdir", str(tmp_path / "cli"), "--no-progress"]
    assert main(args) == 0
    assert main(args) == 2 and "resume" in capsys.readouterr().err  # refuses to overwrite the run
    assert main([*args[:5], "250", *args[6:], "--resume"]) == 0
    assert load_checkpoint(tmp_path / "cli" / "checkpoints" / CHECKPOINT)["counters"]["step"] == 250


def test_carracing_smoke(tmp_path):
    """A few hundred steps of the debug preset through the real CarRacing-v3 env (continuous actions)."""
    config = tiny(tmp_path, env="CarRacing-v3", action_repeat=2, time_limit=60, steps=240, prefill=120,
                  train_every=12, eval_episodes=1)
    trainer = _Trainer(config, None, resume=False, progress=False)
    assert trainer.agent.action_dim == 3 and not trainer.agent.discrete
    result = trainer.run()
    assert result["updates"] == 10 and result["nonfinite_updates"] == 0
    assert np.isfinite(result["eval_return"]) and result["episodes"] >= 3  # 60-step episodes
    rows = read_csv(tmp_path / "run" / "metrics.csv")
    assert np.isfinite(float(rows[-1]["model_loss"]))
    # Real CarRacing frames: the grass is green, the replay holds them as uint8.
    frames = trainer.replay.obs[0, :100]
    assert frames.dtype == np.uint8 and frames[..., 1].mean() > frames[..., 2].mean()


def test_load_agent_restores_the_trained_weights(tmp_path):
    from dreamer_tutorial.train import load_agent

    config = tiny(tmp_path, steps=150)
    trainer = _Trainer(config, None, resume=False, progress=False)
    trainer.run()
    agent, loaded_config = load_agent(config.logdir, device="cpu")
    assert loaded_config.steps == 150
    for (name, a), b in zip(trainer.agent.state_dict().items(), agent.state_dict().values()):
        assert torch.equal(a, b) if torch.is_tensor(a) else a == b, name


def _tb_steps(logdir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(logdir), purge_orphaned_data=True)
    events.Reload()
    return [e.step for e in events.Scalars(tag)]


def test_resume_after_a_hard_kill_logs_no_step_twice_and_keeps_the_previous_checkpoint(tmp_path):
    import shutil

    config = tiny(tmp_path)
    train(config, progress=False)
    ckpt = tmp_path / "run" / "checkpoints"
    shutil.copy(ckpt / CHECKPOINT, tmp_path / "at300.pt")
    train(config.replace(steps=500), resume=True, progress=False)
    assert load_checkpoint(ckpt / "previous.pt")["counters"]["step"] == 300  # the one before is kept
    # kill -9 after the rows of steps 400 and 500 were logged, before their checkpoint: the latest checkpoint
    # is the one of step 300 again.
    shutil.copy(tmp_path / "at300.pt", ckpt / CHECKPOINT)
    train(config.replace(steps=500), resume=True, progress=False)
    rows = read_csv(tmp_path / "run" / "metrics.csv")
    # One training row per log step and one evaluation row at the end of each run, none twice.
    logged = [(int(r["step"]), bool(r["eval_return"])) for r in rows]
    assert logged == sorted(set(logged)) == [(100, False), (200, False), (300, False), (300, True), (400, False),
                                             (500, False), (500, True)], logged
    model_steps = _tb_steps(tmp_path / "run", "model_loss")
    assert model_steps == sorted(set(model_steps)) and model_steps[-1] == 500, model_steps


def test_a_damaged_checkpoint_names_the_file_and_resume_falls_back_to_the_previous_one(tmp_path, capsys):
    from dreamer_tutorial.train import load_agent

    config = tiny(tmp_path)
    train(config, progress=False)
    train(config.replace(steps=400), resume=True, progress=False)
    latest = tmp_path / "run" / "checkpoints" / CHECKPOINT
    latest.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match=f"checkpoint {latest} is damaged.*previous.pt"):
        load_agent(config.logdir)
    result = train(config.replace(steps=500), resume=True, progress=False)  # continues from step 300
    assert f"warning: checkpoint {latest} is damaged" in capsys.readouterr().err
    assert result["steps"] == 500 and result["updates"] == (500 - 100) // 10
    (tmp_path / "run" / "checkpoints" / "previous.pt").write_bytes(b"")
    latest.write_bytes(b"")
    with pytest.raises(ValueError, match="is damaged"):
        train(config.replace(steps=600), resume=True, progress=False)


def test_a_checkpoint_of_another_package_version_is_refused_clearly(tmp_path):
    config = tiny(tmp_path, steps=150)
    train(config, progress=False)
    path = tmp_path / "run" / "checkpoints" / CHECKPOINT
    state = torch.load(path, weights_only=True)
    state["format"], state["version"] = 1, "0.1.0"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"written by dreamer_tutorial 0\.1\.0 .*retrain"):
        load_checkpoint(path)


def test_cli_resumes_from_the_logdir_alone_with_the_saved_config(tmp_path, capsys):
    logdir = str(tmp_path / "cli")
    args = ["--preset", "debug", "--device", "cpu", "--steps", "150", "--prefill", "100", "--eval_episodes", "1",
            "--kl_scale", "0.5", "--video_every_eval", "false", "--logdir", logdir, "--no-progress"]
    assert main(args) == 0
    assert main(["--logdir", logdir, "--resume", "--no-progress"]) == 2  # already at steps=150: says so
    assert "already reached 150" in capsys.readouterr().err
    assert main(["--logdir", logdir, "--resume", "--steps", "250", "--no-progress"]) == 0
    saved = load_checkpoint(tmp_path / "cli" / "checkpoints" / CHECKPOINT)
    assert saved["counters"]["step"] == 250
    assert saved["config"]["kl_scale"] == 0.5 and saved["config"]["cnn_depth"] == 8  # the run's own config
    assert saved["config"]["steps"] == 250  # the explicit option overrides it


def saved_learning_rates(logdir) -> dict[str, float]:
    """Each optimiser's learning rate in the run's latest checkpoint."""
    saved = load_checkpoint(Path(logdir) / "checkpoints" / CHECKPOINT)
    return {name: opt["param_groups"][0]["lr"] for name, opt in saved["agent"]["optimizers"].items()}


def test_cli_resume_with_new_learning_rates_trains_with_them(tmp_path):
    # The optimiser states come from the checkpoint, the learning rates from the resumed config.
    logdir = str(tmp_path / "cli")
    common = ["--device", "cpu", "--eval_episodes", "1", "--video_every_eval", "false", "--logdir", logdir,
              "--no-progress"]
    assert main(["--preset", "debug", "--steps", "150", "--prefill", "100", *common]) == 0
    assert main(["--resume", "--steps", "160", "--actor_lr", "1e-5", "--model_lr", "2e-5", *common]) == 0
    assert saved_learning_rates(logdir) == {"model": 2e-5, "actor": 1e-5, "critic": 3e-4}
    saved = load_checkpoint(tmp_path / "cli" / "checkpoints" / CHECKPOINT)
    assert saved["agent"]["optimizers"]["model"]["state"][0]["step"] == 6  # 5 updates, then 1 more


def test_learning_rates_drop_at_lr_drop_step_also_across_a_resume(tmp_path):
    config = tiny(tmp_path, steps=180, lr_drop_step=200, lr_drop=0.25)
    train(config, progress=False)  # to step 180: before the drop
    assert saved_learning_rates(config.logdir) == {"model": 1e-3, "actor": 3e-4, "critic": 3e-4}
    trainer = _Trainer(config.replace(steps=300), None, resume=True, progress=False)
    seen = []
    train_step = trainer.agent.train_step

    def spy(batch):  # the model's learning rate at each update, with the step it was made at
        seen.append((trainer.step, trainer.agent.model_opt.param_groups[0]["lr"]))
        return train_step(batch)

    trainer.agent.train_step = spy
    trainer.run()
    before = {lr for step, lr in seen if step < 200}
    after = {lr for step, lr in seen if step >= 200}
    assert before == {1e-3} and after == {0.25e-3}
    assert saved_learning_rates(config.logdir) == {"model": 0.25e-3, "actor": 0.25 * 3e-4, "critic": 0.25 * 3e-4}


def test_resuming_with_other_network_sizes_is_refused_clearly(tmp_path):
    config = tiny(tmp_path, steps=150)
    train(config, progress=False)
    with pytest.raises(ValueError, match=r"cannot resume.*deter \(32 -> 64\)"):
        train(config.replace(steps=300, deter=64), resume=True, progress=False)
    with pytest.raises(ValueError, match=r"cannot resume.*car_actions \('gas_brake' -> 'throttle'\)"):
        train(config.replace(steps=300, car_actions="throttle"), resume=True, progress=False)  # 3-d -> 2-d actions


@pytest.mark.parametrize("argv, message", [
    (["--device", "cuda"], "sees no CUDA GPU"),
    (["--device", "gpu0"], "unknown device"),
    (["--batch_length", "1"], "batch_length must be at least 2"),
    (["--env", "CartPole-v1"], "pixel"),
])
def test_cli_gives_one_clear_line_for_impossible_settings(tmp_path, capsys, argv, message):
    if argv[:2] == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    try:
        code = main(["--preset", "debug", "--logdir", str(tmp_path / "x"), "--no-progress", *argv])
    except SystemExit as exit_info:  # argparse's error for config values
        code = exit_info.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_minutes_count_the_wall_clock_over_sittings_and_resume_from_the_checkpoint(tmp_path):
    config = tiny(tmp_path)
    train(config, progress=False)
    first = [float(r["minutes"]) for r in read_csv(tmp_path / "run" / "metrics.csv")]
    saved_seconds = load_checkpoint(tmp_path / "run" / "checkpoints" / CHECKPOINT)["counters"]["seconds"]
    assert first == sorted(first) and 0 < first[-1] <= saved_seconds / 60
    train(config.replace(steps=500), resume=True, progress=False)
    rows = read_csv(tmp_path / "run" / "metrics.csv")
    later = [float(r["minutes"]) for r in rows if int(r["step"]) > 300]
    assert later and later == sorted(later) and later[0] > saved_seconds / 60, "the second sitting adds to the first"


def test_resuming_a_checkpoint_without_a_clock_says_that_minutes_restart(tmp_path, capsys):
    # Package 0.2.0's checkpoints hold no "seconds": the resumed sitting's minutes start at 0, and the run says so.
    config = tiny(tmp_path)
    train(config, progress=False)
    path = tmp_path / "run" / "checkpoints" / CHECKPOINT
    state = load_checkpoint(path)
    del state["counters"]["seconds"]
    save_checkpoint(path, state)
    capsys.readouterr()
    train(config.replace(steps=500), resume=True, progress=False)
    err = capsys.readouterr().err
    assert "holds no training clock (package 0.2.0)" in err and "step 300" in err


def test_a_copy_without_replay_and_moments_evaluates_the_same_agent_and_refuses_to_resume(tmp_path):
    slim = load_script("results/carracing/slim_checkpoint.py")
    config = tiny(tmp_path, steps=150)
    train(config, progress=False)
    assert slim.main([config.logdir, str(tmp_path / "slim")]) == 0
    full, small = (Path(d) / "checkpoints" / CHECKPOINT for d in (config.logdir, tmp_path / "slim"))
    assert small.stat().st_size < full.stat().st_size
    assert "replay" not in load_checkpoint(small) and (tmp_path / "slim" / "metrics.csv").exists()
    full_optimizers = load_checkpoint(full)["agent"]["optimizers"]
    assert all(opt["state"] for opt in full_optimizers.values())  # Adam's moments, one entry per weight
    for name, opt in load_checkpoint(small)["agent"]["optimizers"].items():
        assert opt["state"] == {} and opt["param_groups"] == full_optimizers[name]["param_groups"], name
    agent, _ = load_agent(tmp_path / "slim")
    original, _ = load_agent(config.logdir)
    for (name, a), b in zip(agent.state_dict().items(), original.state_dict().values(), strict=True):
        assert torch.equal(a, b) if torch.is_tensor(a) else a == b, name  # weights, and extra state
    with pytest.raises(ValueError, match="cannot resume: .* has no replay buffer"):
        train(config.replace(steps=300, logdir=str(tmp_path / "slim")), resume=True, progress=False)


def _scripted_evaluations(monkeypatch, means, snapshots):
    """Replace the trainer's evaluation by returns from `means`, in order, keeping a copy of the agent's weights
    at each evaluation in `snapshots` (step -> state dict)."""
    training = sys.modules["dreamer_tutorial.train"]  # the module (the package's `train` is the function)
    means = iter(means)

    def scripted(agent, envs, episodes, **kwargs):
        snapshots.append({k: v.clone() for k, v in agent.state_dict().items() if torch.is_tensor(v)})
        mean = float(next(means))
        return {"mean": mean, "std": 0.0, "returns": [mean] * episodes}

    monkeypatch.setattr(training, "evaluate", scripted)


def test_best_pt_holds_the_agent_of_the_best_evaluation_and_survives_resumes(tmp_path, monkeypatch):
    config = tiny(tmp_path, steps=400, eval_every=100)
    best_path = tmp_path / "run" / "checkpoints" / "best.pt"
    snapshots = []
    _scripted_evaluations(monkeypatch, [1.0, 5.0, 3.0, 2.0], snapshots)  # at steps 100, 200, 300, 400 (final)
    train(config, progress=False)
    assert len(snapshots) == 4
    best = load_checkpoint(best_path)
    assert best["counters"]["step"] == 200 and best["counters"]["eval_return"] == 5.0 and "replay" not in best
    agent, _ = load_agent(config.logdir, best=True)
    latest, _ = load_agent(config.logdir)
    for name, value in snapshots[1].items():  # the weights at the step-200 evaluation, not the final ones
        assert torch.equal(agent.state_dict()[name], value), name
    assert any(not torch.equal(latest.state_dict()[k], v) for k, v in snapshots[1].items())
    # best.pt was written twice (steps 100 and 200) and latest.pt once: no previous.pt, the old best.pt went nowhere
    assert not (tmp_path / "run" / "checkpoints" / "previous.pt").exists()

    # A resumed run reads the bar from best.pt: 4.0 and 4.5 do not beat 5.0, 6.0 does.
    _scripted_evaluations(monkeypatch, [4.0, 4.5], snapshots)
    train(config.replace(steps=600), resume=True, progress=False)
    assert load_checkpoint(best_path)["counters"]["step"] == 200
    assert "replay" in load_checkpoint(tmp_path / "run" / "checkpoints" / "previous.pt")  # the step-400 latest.pt
    _scripted_evaluations(monkeypatch, [6.0], snapshots)
    train(config.replace(steps=700), resume=True, progress=False)
    assert load_checkpoint(best_path)["counters"] == {"step": 700, "updates": 60, "eval_return": 6.0, "eval_std": 0.0}


def test_load_agent_best_without_best_pt_says_so(tmp_path):
    config = tiny(tmp_path, steps=150)
    train(config, progress=False)
    (tmp_path / "run" / "checkpoints" / "best.pt").unlink()  # as in a run trained before best.pt existed
    with pytest.raises(ValueError, match="no best.pt in .*a run writes it at its first evaluation"):
        load_agent(config.logdir, best=True)


def test_a_damaged_best_pt_is_reported_and_replaced_at_the_next_evaluation(tmp_path, monkeypatch, capsys):
    config = tiny(tmp_path, steps=200, eval_every=100)
    _scripted_evaluations(monkeypatch, [3.0, 2.0], [])
    train(config, progress=False)
    best_path = tmp_path / "run" / "checkpoints" / "best.pt"
    best_path.write_bytes(b"not a checkpoint")
    _scripted_evaluations(monkeypatch, [1.0], [])  # lower than the lost 3.0: replaces it all the same
    train(config.replace(steps=300), resume=True, progress=False)
    assert "cannot read the evaluation return in" in capsys.readouterr().err
    assert load_checkpoint(best_path)["counters"]["eval_return"] == 1.0


def test_keep_eval_agents_keeps_the_agent_of_every_evaluation_and_load_agent_finds_each(tmp_path, monkeypatch):
    config = tiny(tmp_path, steps=300, eval_every=100, keep_eval_agents=True)
    snapshots = []
    _scripted_evaluations(monkeypatch, [1.0, 5.0, 3.0], snapshots)  # at steps 100, 200, 300 (final)
    train(config, progress=False)
    folder = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in folder.glob("eval_*.pt")) == [f"eval_{s:08d}.pt" for s in (100, 200, 300)]
    assert kept_steps(config.logdir) == [100, 200, 300]
    for step, snapshot, mean in zip((100, 200, 300), snapshots, (1.0, 5.0, 3.0), strict=True):
        kept = load_checkpoint(folder / f"eval_{step:08d}.pt")
        assert kept["counters"]["step"] == step and kept["counters"]["eval_return"] == mean and "replay" not in kept
        agent, _ = load_agent(config.logdir, step=step)
        for name, value in snapshot.items():  # the weights at that evaluation: those it was scored with
            assert torch.equal(agent.state_dict()[name], value), (step, name)
    # the weights did change between evaluations, so the files are not copies of one agent
    assert any(not torch.equal(snapshots[0][k], v) for k, v in snapshots[2].items())
    assert load_checkpoint(folder / "best.pt")["counters"]["step"] == 200  # best.pt as without the option
    with pytest.raises(ValueError, match="no agent of step 150 in .*the run kept those of steps 100, 200, 300"):
        load_agent(config.logdir, step=150)
    with pytest.raises(ValueError, match="choose one agent"):
        load_agent(config.logdir, best=True, step=100)

    # A sitting that crashed after its step-300 checkpoint had kept the agent of a step-400 evaluation: a resume
    # from step 300 drops it (the resumed run evaluates at 400 again), as metrics.csv drops that sitting's rows.
    (folder / "eval_00000400.pt").write_bytes((folder / "eval_00000300.pt").read_bytes())
    _scripted_evaluations(monkeypatch, [2.0], [])
    train(config.replace(steps=350), resume=True, progress=False)  # ends at 350 with its final evaluation
    assert kept_steps(config.logdir) == [100, 200, 300, 350]


def test_without_keep_eval_agents_a_run_keeps_no_agent_per_evaluation_and_says_so(tmp_path, monkeypatch):
    config = tiny(tmp_path, steps=200, eval_every=100)
    _scripted_evaluations(monkeypatch, [1.0, 2.0], [])
    train(config, progress=False)
    assert kept_steps(config.logdir) == [] and not list((tmp_path / "run" / "checkpoints").glob("eval_*"))
    with pytest.raises(ValueError, match="the run kept none .*keep_eval_agents"):
        load_agent(config.logdir, step=100)

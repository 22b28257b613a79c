"""results/carracing/report.py: when the evaluation curve first reached a level, read from a run's metrics; what
command.txt records."""

import argparse

import numpy as np
from script_loader import load_script

from dreamer_tutorial.bench import cpu_model

report = load_script("results/carracing/report.py")

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


def test_command_record_is_the_training_command_the_report_command_and_the_hardware_once_each():
    args = argparse.Namespace(command=None, record=None, out="results/x", episodes=100, best=True, step=None,
                              latent_mode=False, jobs=2, also=[])
    lines = report.command_record(args, 80_000, "CPU (2 cores)").splitlines()
    assert lines[0] == "python -m dreamer_tutorial.train --preset carracing --steps 80000 --logdir <dir>"
    assert lines[1] == "python results/carracing/report.py <dir> results/x --episodes 100 --jobs 2 --best"
    assert lines[2].startswith("hardware: CPU (2 cores); torch ") and len(lines) == 3
    args.latent_mode = True
    assert report.command_record(args, 80_000, "CPU").splitlines()[1].endswith("--best --latent_mode")
    args.also = ["results/a", "results/b"]  # the other seeds' curves: the command redraws the same figure
    assert report.command_record(args, 80_000, "CPU").splitlines()[1].endswith(
        "--best --latent_mode --also results/a results/b")
    args.best, args.step = False, 35_000  # the agent a run kept at its step-35k evaluation (keep_eval_agents)
    assert report.command_record(args, 80_000, "CPU").splitlines()[1].endswith(
        "--jobs 2 --step 35000 --latent_mode --also results/a results/b")


def test_cpu_model_is_the_first_model_name_of_cpuinfo(tmp_path):  # report.py's and run_full.py's hardware line
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx512_bf16\n\n"
                       "processor\t: 1\nmodel name\t: AMD EPYC\n")
    assert cpu_model(cpuinfo) == "AMD EPYC"
    assert cpu_model(tmp_path / "absent")  # another OS: platform.processor() or "unknown model", never empty


def test_command_record_of_a_run_of_several_sittings_is_the_given_file_as_it_is(tmp_path):
    record = tmp_path / "record.txt"
    record.write_text("python -m dreamer_tutorial.train --preset p --steps 30000\n  then --resume --steps 80000\n"
                      "hardware: by hand\n")
    args = argparse.Namespace(command="ignored", record=str(record), out="o", episodes=100, best=False, step=None,
                              latent_mode=False, jobs=1, also=[])
    assert report.command_record(args, 80_000, "CPU") == record.read_text()


def test_the_learning_curve_labels_the_run_with_its_published_folder_and_the_others_with_theirs(tmp_path):
    logdir, other, out = tmp_path / "scratch-name", tmp_path / "seed1-80k", tmp_path / "seed0-80k-drop50k"
    curve = ("step,updates,minutes,episode_return,image_loss,reward_loss,kl,imag_return,eval_return\n"
             "5000,500,9.0,300.0,40.0,0.5,1.0,20.0,\n5000,,9.5,,,,,,420.0\n"
             "10000,1500,19.0,610.0,30.0,0.4,1.1,35.0,\n10000,,19.5,,,,,,805.0\n")
    for folder in (logdir, other):
        folder.mkdir()
        (folder / "metrics.csv").write_text(curve)
    out.mkdir()
    fig = report.draw_curves(str(logdir), [str(other)], out)
    panel = fig.axes[1]  # the evaluation returns
    assert [line.get_label() for line in panel.get_legend().get_lines()] == ["seed0-80k-drop50k", "seed1-80k"]
    np.testing.assert_array_equal(panel.lines[1].get_ydata(), [420.0, 805.0])
    assert (out / "learning_curve.png").is_file() and (out / "metrics.csv").read_text() == curve

"""dreamer_tutorial.lessons (parallel_map, show_full_run) and the full-run runner results/lessons/run_full.py."""

import io
import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
import nbformat
import pytest
import torch
from script_loader import load_script

from dreamer_tutorial.lessons import latent_information, parallel_map, show_full_run

ROOT = Path(__file__).resolve().parents[1]


def load_runner():
    return load_script("results/lessons/run_full.py")


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores for worker processes")
def test_parallel_map_full_mode_uses_processes_and_keeps_order(monkeypatch):
    monkeypatch.setenv("DREAMER_QUICK", "0")
    torch.manual_seed(0)
    jobs = [(torch.randn(6, 4, 5) * scale,) for scale in (0.1, 1.0, 10.0)]
    results = parallel_map(latent_information, jobs, workers=2)
    sequential = [latent_information(*job) for job in jobs]
    assert len(results) == 3
    for got, want in zip(results, sequential):  # same values, same order (the scales give distinct values)
        torch.testing.assert_close(got, want)
    assert len({round(float(r), 6) for r in results}) == 3
    assert os.getpid() not in parallel_map(os.getpid, [(), ()], workers=2)  # they ran in other processes


def test_parallel_map_quick_mode_is_sequential(monkeypatch):
    monkeypatch.setenv("DREAMER_QUICK", "1")
    assert parallel_map(os.getpid, [(), ()]) == [os.getpid()] * 2
    assert parallel_map(divmod, [(7, 2), (9, 4)]) == [(3, 1), (2, 1)]


def test_parallel_map_rejects_notebook_functions():
    def square(x):
        return x * x

    square.__module__ = "__main__"  # what a function defined in a notebook cell looks like
    with pytest.raises(ValueError, match="module-level function of the package"):
        parallel_map(square, [(1,), (2,)])
    with pytest.raises(ValueError, match="module-level function of the package"):
        parallel_map(lambda x: x, [(1,)])


def test_show_full_run_prints_facts_and_text_in_order(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "lessons" / "03"
    folder.mkdir(parents=True)
    run = {"lesson": "03_rssm.ipynb", "wall_seconds": 123.4, "date": "2026-01-02T03:04:05+00:00",
           "command": "python results/lessons/run_full.py 03", "status": "ok", "outputs": ["table", "curves"],
           "hardware": {"cpu": "Some CPU", "cores": 16, "gpu": "NVIDIA H200", "torch": "2.13.0"}}
    (folder / "run.json").write_text(json.dumps(run))
    (folder / "table.txt").write_text("balance 0.8: 41.8 nats\n")
    fig = plt.figure(figsize=(1, 1))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    (folder / "curves.png").write_bytes(buffer.getvalue())
    monkeypatch.setenv("DREAMER_RESULTS", str(tmp_path))
    show_full_run("03")
    lines = capsys.readouterr().out.strip().splitlines()
    assert "NVIDIA H200" in lines[0] and "123 s" in lines[0] and "2026-01-02" in lines[0]
    assert "run_full.py 03" in lines[0]
    assert lines[1] == "balance 0.8: 41.8 nats"  # the text first: it comes first in `outputs`
    assert "Image" in lines[2]  # outside a notebook, display() prints the Image object's repr

    show_full_run("04")
    assert "run_full.py 04" in capsys.readouterr().out  # missing results: says which command makes them


def synthetic_notebook(path: Path) -> None:
    def cell(source, *tags):
        return nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)})

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        cell("import os\nimport matplotlib.pyplot as plt\nprint('untagged', os.environ['DREAMER_QUICK'])"),
        cell("plt.plot([1, 3, 2])\nplt.show()\nprint('final value 1.5')", "full-run:curve"),
        cell("6 * 7", "full-run:answer"),
        cell("raise KeyError('expected')", "raises-exception"),
        cell("raise RuntimeError('boom')"),
        cell("print('never runs')", "full-run:after"),
    ]
    nbformat.write(nb, path)


def test_runner_saves_tagged_outputs_and_reports_the_failure(tmp_path):
    runner = load_runner()
    notebook = tmp_path / "99_synthetic.ipynb"
    synthetic_notebook(notebook)
    out = tmp_path / "out" / "99"
    run = runner.run_lesson(notebook, out, quick=True, timeout=120, command="cmd", executed=tmp_path / "executed")
    assert run["status"] == "failed" and "RuntimeError" in run["error"] and "boom" in run["error"]
    assert run["outputs"] == ["curve", "answer"]  # notebook order; the cell after the failure never ran
    assert json.loads((out / "run.json").read_text()) == run
    assert sorted(p.name for p in out.iterdir()) == ["answer.txt", "curve.png", "curve.txt", "run.json"]
    assert (out / "curve.png").read_bytes().startswith(b"\x89PNG")
    assert (out / "curve.txt").read_text() == "final value 1.5\n"
    assert (out / "answer.txt").read_text() == "42\n"
    assert {"cpu", "cores", "gpu", "torch"} <= set(run["hardware"]) and run["quick"] is True
    executed = nbformat.read(tmp_path / "executed" / notebook.name, as_version=4)
    assert executed.cells[0].outputs[0]["text"] == "untagged 1\n"


def test_runner_reports_a_timeout_in_one_line_and_keeps_earlier_outputs(tmp_path):
    runner = load_runner()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print('done')", metadata={"tags": ["full-run:first"]}),
                nbformat.v4.new_code_cell("import time\ntime.sleep(120)")]
    notebook = tmp_path / "98_slow.ipynb"
    nbformat.write(nb, notebook)
    run = runner.run_lesson(notebook, tmp_path / "out", quick=True, timeout=30, command="cmd")
    assert run["status"] == "failed"
    assert run["error"] == "lesson time limit of 30 s reached in cell 1"  # not the dashes of nbclient's preview
    assert run["outputs"] == ["first"] and (tmp_path / "out" / "first.txt").read_text() == "done\n"


def test_runner_rejects_bad_tag_names():
    runner = load_runner()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("1", metadata={"tags": ["full-run:bad name"]})]
    with pytest.raises(ValueError, match="letters, digits"):
        runner.tagged_outputs(nb)

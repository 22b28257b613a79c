"""Execute lessons in full mode, all at once, and save the outputs of their tagged cells.

    python results/lessons/run_full.py [02 03 ...] [--out results/lessons] [--quick] [--timeout 540] [--executed DIR]

Each lesson (default 02-07) runs in its own process with nbclient (kernel `python3`, working directory
`notebooks/`, DREAMER_QUICK=0, or 1 with --quick for a dry run into a scratch --out). A code cell tagged
`full-run:NAME` has its image output saved as `OUT/NN/NAME.png` and its text output as `OUT/NN/NAME.txt`;
`OUT/NN/run.json` records the lesson, wall time, date, command, hardware, the outputs in notebook order and the
status (with the error's last line when it failed). `--timeout` is each lesson's wall-time limit in seconds; the
cells that ran before a failure or a timeout still have their outputs saved. With `--executed DIR` the executed
notebooks are written to DIR. Each kernel gets OMP_NUM_THREADS = cores // lessons unless it is set. The exit
code is non-zero if any lesson failed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
DEFAULT_LESSONS = ("02", "03", "04", "05", "06", "07")
TAG = re.compile(r"full-run:(.*)")
NAME = re.compile(r"[A-Za-z0-9_-]+")


def tagged_outputs(nb) -> list[tuple[str, str, bytes | str]]:
    """(name, kind, data) for each tagged cell's outputs, in notebook order: kind "png" (bytes) for its images
    (the second and later images of a cell are named NAME_2, NAME_3, ...), "txt" for its text (stdout, then the
    plain-text results of cells without an image)."""
    import base64

    found = []
    for cell in nb.cells:
        names = [m.group(1) for tag in cell.metadata.get("tags", []) if (m := TAG.fullmatch(tag))]
        for name in names:
            if not NAME.fullmatch(name):
                raise ValueError(f"bad tag 'full-run:{name}': the name must be letters, digits, '_' or '-'")
        if not names or cell.cell_type != "code":
            continue
        images = [base64.b64decode(out["data"]["image/png"]) for out in cell.get("outputs", [])
                  if "image/png" in out.get("data", {})]
        text = "".join(out["text"] for out in cell.get("outputs", [])
                       if out.get("output_type") == "stream" and out.get("name") == "stdout")
        if not images:
            text += "".join(out["data"]["text/plain"] + "\n" for out in cell.get("outputs", [])
                            if out.get("output_type") == "execute_result" and "text/plain" in out.get("data", {}))
        for name in names:
            found += [(name if i == 0 else f"{name}_{i + 1}", "png", image) for i, image in enumerate(images)]
            if text.strip():
                found.append((name, "txt", text))
    return found


def hardware() -> dict:
    import torch

    from dreamer_tutorial.bench import cpu_model

    cpu = cpu_model()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": gpu, "torch": torch.__version__}


def lesson_file(lesson: str) -> Path:
    matches = sorted(NOTEBOOKS.glob(f"{lesson}_*.ipynb"))
    if len(matches) != 1:
        raise ValueError(f"expected one notebook notebooks/{lesson}_*.ipynb, found {len(matches)}")
    return matches[0]


def run_lesson(notebook: Path, out: Path, quick: bool, timeout: float, command: str,
               executed: Path | None = None) -> dict:
    """Execute one notebook (its own kernel) and write its tagged outputs and run.json into `out`."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError

    nb = nbformat.read(notebook, as_version=4)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the inline backend makes the images
    env["DREAMER_QUICK"] = "1" if quick else "0"
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(notebook.parent)}})
    status, error, index = "ok", None, 0
    start = time.perf_counter()
    try:
        with client.setup_kernel(env=env):
            for index, cell in enumerate(nb.cells):
                left = timeout - (time.perf_counter() - start)
                if left <= 0:
                    raise TimeoutError(f"lesson time limit of {timeout:.0f} s reached before cell {index}")
                client.timeout = max(1, int(left))
                client.execute_cell(cell, index)
    except CellTimeoutError:  # its message ends with a preview of the cell between dashed lines
        status, error = "failed", f"lesson time limit of {timeout:.0f} s reached in cell {index}"
    except Exception as exc:  # the run failed: keep what the cells before the failure produced
        status = "failed"
        lines = [line for line in str(exc).strip().splitlines() if line.strip()]
        error = lines[-1] if lines else type(exc).__name__
    wall = time.perf_counter() - start

    out.mkdir(parents=True, exist_ok=True)
    for old in [*out.glob("*.png"), *out.glob("*.txt")]:
        old.unlink()
    outputs = []
    for name, kind, data in tagged_outputs(nb):
        path = out / f"{name}.{kind}"
        if kind == "png":
            path.write_bytes(data)
        else:
            path.write_text(data)
        outputs += [name] if name not in outputs else []
    run = {"lesson": notebook.name, "wall_seconds": round(wall, 1),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "command": command, "quick": quick, "hardware": hardware(), "outputs": outputs,
           "status": status, "error": error}
    (out / "run.json").write_text(json.dumps(run, indent=1) + "\n")
    if executed is not None:
        executed.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, executed / notebook.name)
    return run


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lessons", nargs="*", default=list(DEFAULT_LESSONS), help="lesson numbers, e.g. 02 03")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "lessons", help="results folder")
    parser.add_argument("--quick", action="store_true", help="dry run in quick mode (use a scratch --out)")
    parser.add_argument("--timeout", type=float, default=540, help="wall-time limit per lesson, seconds")
    parser.add_argument("--executed", type=Path, help="also write the executed notebooks to this folder")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child process: one lesson
    parser.add_argument("--command", help=argparse.SUPPRESS)  # a child's record: the command that started it all
    args = parser.parse_args(argv)
    command = args.command or "python results/lessons/run_full.py " + " ".join(argv)

    if args.one:
        run = run_lesson(lesson_file(args.lessons[0]), args.out / args.lessons[0], args.quick, args.timeout,
                         command, args.executed)
        return 0 if run["status"] == "ok" else 1

    notebooks = {lesson: lesson_file(lesson) for lesson in args.lessons}  # fail early on a wrong number
    # the kernels share the cores: without a limit each would start one torch thread per core
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // len(notebooks))))
    start = time.perf_counter()
    children = {}
    for lesson in notebooks:
        child = [sys.executable, __file__, lesson, "--one", "--out", str(args.out), "--timeout", str(args.timeout),
                 "--command", command]
        child += ["--quick"] * args.quick + (["--executed", str(args.executed)] if args.executed else [])
        children[lesson] = subprocess.Popen(child, cwd=ROOT, start_new_session=True)  # a group with its kernel
        print(f"started lesson {lesson} ({notebooks[lesson].name})", flush=True)
    failed = []
    for lesson, child in children.items():
        try:
            child.wait(timeout=max(1.0, args.timeout + 120 - (time.perf_counter() - start)))
        except subprocess.TimeoutExpired:  # a hang past the child's own limit: SIGTERM lets it stop its kernel
            os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        run_json = args.out / lesson / "run.json"
        run = json.loads(run_json.read_text()) if run_json.exists() else {}
        if child.returncode != 0 or run.get("status") != "ok":
            failed.append(lesson)
            if run.get("status") != "failed":  # the child died before writing its record
                run_json.parent.mkdir(parents=True, exist_ok=True)
                run = {"lesson": notebooks[lesson].name, "command": command, "status": "failed",
                       "error": f"runner process ended with code {child.returncode}", "outputs": []}
                run_json.write_text(json.dumps(run, indent=1) + "\n")
        print(f"lesson {lesson}: {run.get('status')} in {run.get('wall_seconds', '?')} s, "
              f"outputs {run.get('outputs')}" + (f", error: {run['error']}" if run.get("error") else ""), flush=True)
    print(f"all done in {time.perf_counter() - start:.0f} s" + (f"; FAILED: {' '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

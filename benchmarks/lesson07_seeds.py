"""How often does lesson 07's training loop learn? Run its code over many seeds and print each greedy return.

    python benchmarks/lesson07_seeds.py --seeds 0-23 [--full] [--jobs 16] [--threads 1] [--package DIR]
                                        [--replace OLD NEW ...] [--out FILE.jsonl]

Each seed runs in its own process (`--threads` torch threads, default one) and executes the lesson's code cells
from the first up to and including `checks.check_learning` (section 3: the agent you assembled, the loop written
out, the check), with the loop's `SEED = ...` set to the seed. `--full` runs them without quick mode.
`--replace OLD NEW` edits the code before it runs (for example `--replace "(2300, 300, 1)" "(2300, 300, 2)"` for
an update every second step), and `--package DIR` imports `dreamer_tutorial` from DIR instead (a modified copy of
the package). Each finished seed prints one JSON line: the seed, the seconds, the greedy and the random return,
and whether the check passed. The thread count changes the results of some seeds (floating-point sums in another
order), so a study gives rates; a single seed's outcome holds only for the thread count it ran with (a notebook
kernel on 2 cores uses 2).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "07_dreamer_agent.ipynb"
CHECK = "checks.check_learning("
RESULT = re.compile(r"greedy return (-?[\d.]+) ± [\d.]+, random policy (-?[\d.]+)")


def lesson_code(replacements: list[tuple[str, str]], seed: int) -> str:
    """Lesson 07's code cells up to the learning check, with the seed and the edits applied."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    code, seeded = [], 0
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        source, n = re.subn(r"^SEED = \d+", f"SEED = {seed}", "".join(cell["source"]), flags=re.M)
        seeded += n
        code.append("\n".join(line for line in source.splitlines() if not line.startswith(("%", "!"))))
        if CHECK in source:
            break
    else:
        raise SystemExit(f"{NOTEBOOK.name} has no cell that calls {CHECK}...)")
    if not seeded:
        raise SystemExit(f"{NOTEBOOK.name}: no line `SEED = <int>` before {CHECK}...)")
    text = "\n".join(code)
    for old, new in replacements:
        if old not in text:
            raise SystemExit(f"--replace: {old!r} does not occur in the lesson's code")
        text = text.replace(old, new)
    return text


def run_one(seed: int, replacements: list[tuple[str, str]], workdir: Path, threads: int) -> dict:
    """Execute the lesson code for one seed in this process; the returns the learning check printed."""
    import matplotlib

    matplotlib.use("Agg")
    import torch

    torch.set_num_threads(threads)
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    out, start, error = io.StringIO(), time.time(), ""
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(lesson_code(replacements, seed), "lesson07", "exec"), {})
    except Exception as e:  # the check raises when the agent did not learn; other errors are reported too
        error = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    found = RESULT.search(out.getvalue())
    return dict(seed=seed, seconds=round(time.time() - start, 1), greedy=float(found[1]) if found else None,
                random=float(found[2]) if found else None, passed=not error, error=error)


def parse_seeds(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-2", help="a seed or a range such as 0-23")
    parser.add_argument("--full", action="store_true", help="without quick mode")
    parser.add_argument("--jobs", type=int, default=os.cpu_count(), help="seeds run at once")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per seed")
    parser.add_argument("--package", help="import dreamer_tutorial from this directory")
    parser.add_argument("--replace", nargs=2, action="append", default=[], metavar=("OLD", "NEW"))
    parser.add_argument("--out", help="also append the JSON lines to this file")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: run this seed here
    args = parser.parse_args()
    replacements = [tuple(r) for r in args.replace]
    if args.one is not None:
        print(json.dumps(run_one(args.one, replacements, Path("/tmp/lesson07_seeds") / str(args.one), args.threads)))
        return
    lesson_code(replacements, 0)  # a bad --replace fails here, once
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), DREAMER_QUICK="0" if args.full else "1")
    if args.package:
        env["PYTHONPATH"] = os.pathsep.join([str(Path(args.package).resolve()), env.get("PYTHONPATH", "")])
    command = [sys.executable, __file__, "--one"]
    extra = ["--threads", str(args.threads), *(a for r in replacements for a in ("--replace", *r))]

    def launch(seed: int) -> str:
        done = subprocess.run([*command, str(seed), *extra], env=env, cwd=ROOT / "notebooks", capture_output=True,
                              text=True)
        line = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else json.dumps(
            dict(seed=seed, passed=False, error=(done.stderr.strip().splitlines() or [""])[-1]))
        print(line, flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(line + "\n")
        return line

    with ThreadPoolExecutor(args.jobs) as pool:
        lines = list(pool.map(launch, parse_seeds(args.seeds)))
    results = [json.loads(line) for line in lines]
    print(f"{sum(r['passed'] for r in results)} of {len(results)} seeds passed the learning check")


if __name__ == "__main__":
    main()

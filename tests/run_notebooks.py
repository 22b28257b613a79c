"""Execute every lesson with nbval (quick mode) and print how long each took.

Run by `make test` after the unit tests: `DREAMER_QUICK=1 python tests/run_notebooks.py [notebooks...]`.
Exits non-zero if any notebook fails. `--nbval-lax` checks that every cell runs (and that cells tagged
`raises-exception` do raise) without comparing outputs, which vary between runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    notebooks = [Path(a) for a in argv] or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    env = {**os.environ, "DREAMER_QUICK": os.environ.get("DREAMER_QUICK", "1"), "MPLBACKEND": "Agg"}
    failed, times = [], {}
    for nb in notebooks:
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                                 "--nbval-cell-timeout=600", str(nb)], cwd=ROOT, env=env)
        times[nb.name] = time.perf_counter() - start
        print(f"{nb.name}: {'ok' if result.returncode == 0 else 'FAILED'} in {times[nb.name]:.1f} s", flush=True)
        if result.returncode != 0:
            failed.append(nb.name)
    print("\nnotebook execution times (quick mode):")
    for name, seconds in times.items():
        print(f"  {name:32s} {seconds:6.1f} s")
    print(f"  {'total':32s} {sum(times.values()):6.1f} s")
    if failed:
        print(f"FAILED notebooks: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

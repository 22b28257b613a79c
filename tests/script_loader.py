"""The scripts under results/ are not a package: tests load one as a module by its path to test its functions."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(path: str) -> ModuleType:
    """The script at `path` (relative to the repository root) as a module named after its file. Its folder is on
    sys.path while it loads, as when it runs, so it can import the scripts beside it."""
    folder = str((ROOT / path).parent)
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(folder)
    return module

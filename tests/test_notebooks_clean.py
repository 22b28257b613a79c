"""Notebooks are teaching material: stored without outputs or execution counts, and all lessons present."""

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_all_nine_lessons_exist():
    names = [nb.name[:2] for nb in NOTEBOOKS]
    assert names == [f"{i:02d}" for i in range(9)], f"expected lessons 00..08, found {[nb.name for nb in NOTEBOOKS]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path):
    cells = json.loads(path.read_text())["cells"]
    code = [(i, c) for i, c in enumerate(cells) if c["cell_type"] == "code"]
    dirty = [i for i, c in code if c.get("outputs") or c.get("execution_count")]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; strip them before committing"

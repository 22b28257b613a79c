# One-command setup: `make lab` to learn, `make test` to check everything, `make train` to train CarRacing.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup lab test lint train bench clean student grade index

setup: $(STAMP)

# torch==2.13.0 first: it resolves to the CPU wheel on the course machines; a later `-e .[dev]`
# then finds torch already satisfied and does not pull CUDA packages.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

lab: setup
	$(BIN)/jupyter lab notebooks/

test: setup
	$(BIN)/ruff check dreamer_tutorial tests benchmarks results
	DREAMER_QUICK=1 $(BIN)/python -m pytest -q -rs --durations=15 tests
	DREAMER_QUICK=1 $(BIN)/python tests/run_notebooks.py

lint: setup
	$(BIN)/ruff check dreamer_tutorial tests benchmarks results

train: setup
	$(BIN)/python -m dreamer_tutorial.train --preset carracing $(ARGS)

bench: setup
	$(BIN)/python -m dreamer_tutorial.bench

# Classroom (TEACHING.md): the student version of every lesson, grading returned notebooks, the course index.
student: setup
	$(BIN)/python -m dreamer_tutorial.classroom student --out build/student

RETURNED ?= returned/*.ipynb
grade: setup
	$(BIN)/python -m dreamer_tutorial.classroom grade $(RETURNED) --csv grades.csv

index: setup
	$(BIN)/python -m dreamer_tutorial.classroom index

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

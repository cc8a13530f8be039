# Two commands do everything on a fresh machine (see README):
#   make report   set up, then run the full default analysis -> reports/index.html, reports/results.csv
#   make test     set up, then run the default test suite (what CI runs)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup report test test-slow bench clean-venv constraints

setup: $(STAMP)

# constraints.txt pins the exact versions we tested (pip freeze); pyproject.toml bounds them.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	$(BIN)/python -m compileall -q src >/dev/null   # bytecode once, not per command (see README, Speed)
	touch $(STAMP)

report: $(STAMP)
	$(BIN)/bayes-haic run --out reports

test: $(STAMP)
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_survival.py
	$(BIN)/python benchmarks/bench_main.py
	$(BIN)/python benchmarks/bench_targets.py

clean-venv:
	rm -rf $(VENV)

constraints:
	$(BIN)/python -m pip freeze --all --exclude-editable | grep -vi '^bayes-haic' | grep -v '^pip==' | \
	  { echo "# Exact versions tested (pip freeze of the project venv, Python 3.11). pyproject.toml bounds them;"; \
	    echo "# this file pins them so a fresh install gives what CI tested. Regenerate: make constraints"; cat; } > constraints.txt

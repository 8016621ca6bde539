# Two commands matter: `make run` (set up and start the portal) and `make test`.
PYTHON ?= python3
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: run setup install test bench bench-pages clean

run: setup
	@echo ""
	@echo "  Portal: http://127.0.0.1:8000   (Ctrl-C stops the web server and the workers)"
	@echo ""
	@# On Ctrl-C, stop every process started here once (the trap is removed first: kill 0 signals this shell too).
	@trap 'trap - INT TERM; kill 0' INT TERM; \
	bin/portal inference-worker & \
	bin/portal training-worker & \
	bin/portal beat & \
	bin/portal web & \
	wait

setup: install
	bin/portal setup

install: $(INSTALLED)

$(INSTALLED): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV_PYTHON) -m pip install --quiet --upgrade pip
	$(VENV_PYTHON) -m pip install --quiet -r requirements.txt
	touch $(INSTALLED)

test: install
	$(VENV_PYTHON) -m pytest $(PYTEST_ARGS)

bench: install
	nice $(VENV_PYTHON) bench/inference.py

# Worklist, patient list and patient page with 10,000 patients and 100,000 scans (PostgreSQL).
bench-pages: install
	nice $(VENV_PYTHON) bench/pages.py

clean:
	rm -rf var .pytest_cache

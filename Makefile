# Two commands matter: `make run` (set up and start the portal) and `make test`.
PYTHON ?= python3
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: run setup install test bench bench-pages clean

# bin/portal run: setup, the web server and the workers; the address (PORTAL_BIND) and the first
# administrator's password are printed last; Ctrl-C stops every process it started.
run: install
	bin/portal run

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

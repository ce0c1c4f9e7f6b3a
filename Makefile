# probe: one-command set-up. `make test` and `make demo` create/refresh the virtualenv themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install system-deps demo test check lint typecheck bench clean

install: $(STAMP)

# Debian packages (namespaces, iptables/nft, NFQUEUE headers…), installed only when missing.
system-deps:
	@missing=$$(grep -v '^\s*#' deps/apt.txt | grep -v '^\s*$$' | while read p; do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "warning: missing Debian packages (need root to install): $$missing"; fi; \
	fi

$(STAMP): pyproject.toml deps/apt.txt
	@$(MAKE) --no-print-directory system-deps
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip >/dev/null
	@$(PY) -m pip install -q -e '.[dev,sim,dask]'
	@# OONI's data library, pinned, for the test that it loads our ooni export (issue 14). Its own
	@# pins (cryptography~=38, click~=8.0, pyopenssl~=22.1) conflict with ours, so it goes in
	@# without them, beside the libraries its models need; only its parser is used.
	@$(PY) -m pip install -q --no-deps 'oonidata==0.3.0' 'pyopenssl==26.4.0'
	@$(PY) -m pip install -q 'mashumaro~=3.0' 'orjson~=3.8' 'lz4~=4.0' 'lxml~=4.9' \
	  'boto3~=1.24' 'tqdm~=4.64' 'tabulate~=0.9.0' 'click-loglevel~=0.5.0' 'pyyaml~=6.0' \
	  'requests~=2.27'
	@touch $(STAMP)

demo: install
	@$(PY) -m probe.lab.demo

test: install
	$(PY) -m pytest -q --durations=25

lint: install
	$(VENV)/bin/ruff check probe tests
	$(VENV)/bin/lint-imports --no-cache

typecheck: install
	$(VENV)/bin/mypy probe

check: lint typecheck test

bench: install
	$(PY) -m probe.lab.bench

clean:
	rm -rf $(VENV) build *.egg-info

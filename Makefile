# The two commands of the README: `make serve` and `make test`. Each sets up .venv first
# (again only when the requirements change).
VENV   := .venv
PYTHON ?= python3
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)
export PORT ?= 8080

.PHONY: serve test setup bench redis-server chromium
serve: $(STAMP)
	$(VENV)/bin/gunicorn app:app --config gunicorn.conf.py --bind 0.0.0.0:$(PORT)

test: $(STAMP) redis-server chromium
	$(VENV)/bin/python -m pytest

# Every benchmark, then docs/benchmarks.md (about 6 hours on 2 cores; not part of the tests).
bench: $(STAMP)
	$(VENV)/bin/python bench/run_all.py

# A program the tests need, from Debian's packages if missing (as root, or with sudo); apt's
# log is shown only if the install fails.
define apt_install
	@command -v $(1) >/dev/null || { \
	  echo "installing $(2) (apt-get)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); log=$$(mktemp); \
	  { $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(2); } >$$log 2>&1 \
	    || { tail -n 30 $$log; rm -f $$log; exit 1; }; \
	  rm -f $$log; }
endef

# The tests start their own redis-server processes on free ports: they need the program, not
# a running server.
redis-server:
	$(call apt_install,redis-server,redis-server)

# The browser tests (tests/test_browser.py) drive Debian's Chromium with Playwright's Python
# package, never a browser Playwright downloads.
chromium:
	$(call apt_install,chromium,chromium)

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	$(VENV)/bin/pip install --quiet --no-deps -e .  # the package and its `automl` command
	$(VENV)/bin/python -c "from automl import hydra, kernels; kernels.warm_up(); hydra.warm_up()"  # numba's cache
	rm -f $(VENV)/.installed-*
	touch $@

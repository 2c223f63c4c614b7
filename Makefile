# Two commands: `make run` starts the app on the bundled model, `make test` runs every test.
# Both create .venv and install what they need on a fresh Debian machine with Python 3.11 (including
# python3.11-venv when Debian's python3 lacks it: scripts/ensure-venv.sh), every package at the version
# requirements.lock pins (`make lock` writes it again after a dependency changes in pyproject.toml).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test
MODELS_DIR ?= models
LOCK   := requirements.lock

.PHONY: run test bench install install-test system-test-deps models clean translations lock

$(PY):
	@sh scripts/ensure-venv.sh "$(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Every package at the version the lock pins (a constraints file: pip installs what pyproject.toml asks
# for, at the locked versions, and nothing else). torch first: the CPU build on this machine's disk.
$(STAMP): pyproject.toml $(LOCK) | $(PY)
	$(PY) -m pip install --quiet -c $(LOCK) torch==2.13.0
	$(PY) -m pip install --quiet -c $(LOCK) -e .
	touch $@

$(TSTAMP): $(STAMP)
	$(PY) -m pip install --quiet -c $(LOCK) -e '.[test]'
	touch $@

install: $(STAMP)
install-test: $(TSTAMP) system-test-deps

# Chromium + ChromeDriver for the browser tests, redis-server for the shared-cache tests, nginx and openssl
# for the reverse-proxy tests (docs/nginx/attention-explorer.conf in front of gunicorn), and a CJK font
# (Noto Sans CJK, when fontconfig knows no Chinese font) so Chinese shows as characters, not boxes.
system-test-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null 2>&1 || missing="$$missing chromium-driver"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$$missing nginx-light"; \
	command -v openssl >/dev/null 2>&1 || missing="$$missing openssl"; \
	[ -n "$$(fc-list :lang=zh family 2>/dev/null)" ] || missing="$$missing fonts-noto-cjk"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

run: install
	$(PY) app.py

test: install-test
	$(PY) -m pytest

# The offered hub models (bert-base-chinese, gpt2, HuggingFaceTB/SmolLM2-135M, Qwen/Qwen2.5-0.5B) into $(MODELS_DIR)/<name>, on a machine with network
# access; prints the ATTN_MODELS line that offers them. Offline, it says so and fails.
models: install
	$(PY) scripts/download_models.py --dest "$(MODELS_DIR)"

bench: install-test  # bench/browser.py drives Chromium with Selenium, as the browser tests do
	$(PY) bench/extract.py
	$(PY) bench/views.py
	$(PY) bench/browser.py

clean:
	rm -rf $(VENV) .pytest_cache

# requirements.lock again, from pyproject.toml: a fresh virtual environment resolves every dependency
# (runtime, test, notebook) at today's versions; scripts/lock.sh writes what it installed.
lock:
	@sh scripts/lock.sh "$(PYTHON)" "$(LOCK)"

# The interface's catalogs: extract every marked string, update the .po files, compile the .mo files
# (both are committed; tests/components/test_i18n.py checks they are current).
translations: install
	$(VENV)/bin/pybabel extract -F babel.cfg -k N_ -k _ -k ngettext:1,2 --no-location --sort-output \
	  --project "Attention Explorer" --copyright-holder "Attention Explorer" -o components/locales/messages.pot .
	$(VENV)/bin/pybabel update -i components/locales/messages.pot -d components/locales --no-fuzzy-matching
	$(VENV)/bin/pybabel compile -d components/locales --statistics

# The two commands the README leads with. Both self-install into .venv on a fresh machine.
.PHONY: demo test install install-dev lint format

VENV := .venv
STAMP_INPUTS := pyproject.toml scripts/install.sh
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl

demo: install
	$(VENV)/bin/hearth demo

test: install-dev
	bash scripts/ensure_chromium.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	HEARTH_TEST_POSTGRES_URL="$$(bash scripts/ensure_postgres.sh)" \
		timeout --kill-after=30 1500 $(VENV)/bin/python -m pytest -p no:cacheprovider

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

$(VENV)/.installed: $(STAMP_INPUTS)
	bash scripts/install.sh
	touch $@

$(VENV)/.installed-dev: $(STAMP_INPUTS)
	bash scripts/install.sh dev,fleet
	touch $@ $(VENV)/.installed

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff format .

# Overlay — the README's commands. Everything runs in the project environment .venv (uv).
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
VENV := $(CURDIR)/.venv/bin
export OVERLAY_HOME ?= $(CURDIR)/.overlay
QUESTION ?= What is a hash table?
PORT ?= 7860

.PHONY: install demo test ui bench flows serve clean-state

install: .venv/.installed
.venv/.installed: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@echo "installing the project environment (first time: llama-cpp-python compiles, ~6 min on 2 cores)"
	$(UV) sync --locked
	@touch $@

demo: install
	$(VENV)/overlay build
	$(VENV)/lfx run --format text flows/overlay_answer.json "$(QUESTION)"

test: install
	bash scripts/test.sh $(ARGS)

flows: install
	$(VENV)/python scripts/gen_flows.py

ui: install
	$(VENV)/overlay build
	bash scripts/ui.sh $(PORT)

serve: install
	@test -n "$$LANGFLOW_API_KEY" || { echo "set LANGFLOW_API_KEY=<any secret> first"; exit 2; }
	$(VENV)/lfx serve flows/ --host 127.0.0.1 --port 8000

bench: install
	@for b in bench/*.py; do echo "== $$b"; $(VENV)/python $$b || exit 1; done

clean-state:
	rm -rf $(OVERLAY_HOME)

# One install, three commands. Every target sets up the virtual environment it needs.
#   make smoke   offline smoke pipeline (synthetic data, 2 CPU cores, a few minutes)
#   make paper   the paper's configuration (params.yaml; a GPU is strongly advised)
#   make test    the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
CORES  ?= all
# Training, certification and PAG jobs declare gpu=1 and the default profile lets one run at a time. On a
# machine without a GPU they run on the CPU, so there the cap is lifted to the number of cores.
GPUS   := $(shell nvidia-smi -L 2>/dev/null | grep -c GPU)
GPUCAP := $(if $(filter 0,$(GPUS)),--resources gpu=$(shell nproc),)
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install smoke paper test lint report clean-smoke

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

smoke: $(STAMP)
	snakemake --cores $(CORES) $(GPUCAP) --configfile config/smoke.yaml --replace-workflow-config

paper: $(STAMP)
	snakemake --cores $(CORES) $(GPUCAP)

test: $(STAMP)
	python -m pytest

lint: $(STAMP)
	ruff check . && ruff format --check . && snakefmt --check workflow/ && snakemake --lint

report: $(STAMP)
	snakemake --report report.html

clean-smoke:
	rm -rf results resources/data/synthetic.pt resources/state logs paper/figures paper/tables \
		paper/generated paper/build paper/main.pdf .snakemake

# One install, three commands. Every target sets up the virtual environment it needs.
#   make smoke   offline smoke pipeline (synthetic data, 2 CPU cores, a few minutes)
#   make paper   the paper's configuration (params.yaml; a GPU is strongly advised)
#   make test    the test suite
#   make bench-cpu  benchmarks/results-cpu.json (BENCHMARKS.md), no-op figures included
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

.PHONY: install smoke paper test lint report bench-cpu clean-smoke

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

smoke: $(STAMP)
	snakemake --cores $(CORES) $(GPUCAP) --configfile config/smoke.yaml --replace-workflow-config

paper: $(STAMP)
	snakemake --cores $(CORES) $(GPUCAP)

# The suite runs on every core: each pytest-xdist worker takes whole modules, in the order that
# tests/conftest.py sets.
TEST_WORKERS ?= $(shell nproc)
test: $(STAMP)
	python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

lint: $(STAMP)
	ruff check . && ruff format --check . && snakefmt --check workflow/ && snakemake --lint

report: $(STAMP)
	snakemake --report report.html

# The no-op figures need a copy built by both tools: the smoke configuration built by DVC, then
# handed to Snakemake with --touch (minutes).
NOOP ?= $(abspath $(VENV))/noop-repo
bench-cpu: $(STAMP)
	rm -rf $(NOOP) && mkdir -p $(NOOP) && git archive HEAD | tar -x -C $(NOOP)
	cp config/smoke.yaml $(NOOP)/params.yaml
	cd $(NOOP) && git init -q && git add -A && git -c user.name=bench -c user.email=bench@localhost \
		commit -qm copy && dvc repro && snakemake --touch --cores 1
	python benchmarks/bench.py --mode cpu --out benchmarks/results-cpu.json --repeats 3 \
		--pipeline_repo $(NOOP)

clean-smoke:
	rm -rf results resources/data/synthetic.pt resources/state logs paper/figures paper/tables \
		paper/generated paper/build paper/main.pdf .snakemake

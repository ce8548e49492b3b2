# One install, three commands. Every target sets up the virtual environment it needs.
#   make smoke   offline smoke pipeline (synthetic data, 2 CPU cores, a few minutes)
#   make paper   the paper's configuration (params.yaml; a GPU is strongly advised)
#   make test    the test suite
#   make handover  record a Snakemake build in dvc.lock (DVC then sees it as its own)
#   make docs    the smoke results shown in the README (docs/smoke/)
#   make bench-cpu  benchmarks/results-cpu.json (BENCHMARKS.md), no-op figures included
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# ruamel.yaml 0.19 no longer installs its C parser, and DVC then parses dvc.yaml and dvc.lock in pure
# Python: `dvc repro` with nothing to do takes about 0.8 s longer on 2 cores (BENCHMARKS.md). 0.18
# brings the parser along; DVC accepts it.
PINS   := "ruamel.yaml<0.19"
STAMP  := $(VENV)/.installed-$(shell (cat pyproject.toml; echo '$(PINS)') | cksum | cut -d' ' -f1)
CORES  ?= all
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install smoke paper test lint report handover docs bench-cpu clean-smoke

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]" $(PINS)
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

smoke: $(STAMP)
	snakemake --cores $(CORES) --configfile config/smoke.yaml --replace-workflow-config

paper: $(STAMP)
	snakemake --cores $(CORES)

# The suite runs on every core: each pytest-xdist worker takes whole modules, in the order that
# tests/conftest.py sets.
TEST_WORKERS ?= $(shell nproc)
test: $(STAMP)
	python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

lint: $(STAMP)
	ruff check . && ruff format --check . && snakefmt --check workflow/ && snakemake --lint

report: $(STAMP)
	snakemake --report report.html

# The README's "What you get": the smoke build's Figure 1, certified-accuracy figure and table (a test
# checks that the committed copies equal the smoke build's).
DOCS := docs/smoke
docs: smoke
	mkdir -p $(DOCS) && cp paper/figures/fig1.png paper/figures/certified_accuracy.png \
		paper/tables/certified_accuracy.md $(DOCS)/
	python -c "import pathlib, re; r = pathlib.Path('README.md'); \
	t = pathlib.Path('$(DOCS)/certified_accuracy.md').read_text(encoding='utf-8'); \
	r.write_text(re.sub(r'(<!-- smoke table -->\n).*?(<!-- /smoke table -->)', \
	lambda m: m[1] + t + m[2], r.read_text(encoding='utf-8'), flags=re.S), encoding='utf-8')"

# Hand a Snakemake build over to DVC: record it in dvc.lock without running anything. Only a build of
# the current params.yaml qualifies (`snakemake -n` must have nothing to do), since `dvc commit -f`
# stamps whatever is in the workspace with the current parameters.
handover: $(STAMP)
	@snakemake -n 2>&1 | grep -q "Nothing to be done" || { echo "handover: snakemake -n has jobs \
	to run; build params.yaml first (snakemake --cores all)" >&2; exit 1; }
	dvc commit -f -q
	@echo "dvc.lock records the build; commit it with params.yaml and dvc.yaml, then dvc push"

# The no-op figures need a copy built by both tools: the smoke configuration (with dvc.yaml's lists
# regenerated for it) built by Snakemake, then recorded by DVC without running anything
# (`dvc commit -f`; minutes).
NOOP ?= $(abspath $(VENV))/noop-repo
bench-cpu: $(STAMP)
	rm -rf $(NOOP) && mkdir -p $(NOOP) && git archive HEAD | tar -x -C $(NOOP)
	cp config/smoke.yaml $(NOOP)/params.yaml
	cd $(NOOP) && python -m robust.deps params.yaml dvc.yaml && git init -q && git add -A && git -c user.name=bench -c user.email=bench@localhost \
		commit -qm copy && snakemake --cores $(CORES) && dvc commit -f -q
	python benchmarks/bench.py --mode cpu --out benchmarks/results-cpu.json --repeats 7 \
		--pipeline_repo $(NOOP)

clean-smoke:
	rm -rf results resources/data/synthetic.pt resources/state logs paper/figures paper/tables \
		paper/generated paper/build paper/main.pdf .snakemake

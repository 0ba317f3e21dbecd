# dlbench: `make experiment` and `make test` do all the set-up on a fresh machine (they create .venv
# and install the package on first use; later calls reuse it). The targets run .venv's dlbench, so
# none of them needs `source .venv/bin/activate`.
#   make experiment NAME=mlp_mnist DEVICES=cpu,gpu SET="epochs=3 learning_rate=0.1" VARIANTS=numpy
#   make study NAME=mlp_learning_rate SET="epochs=3"
#   make compare NAME=mlp_mnist      make plot NAME=mlp_mnist      make list      make report
#   make test
#   make readme       (the generated tables of README.md and docs/, from the run records)
#   make bench        (epoch time of the reference MLP: NumPy vs Keras vs the matrix-multiply bound)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
NAME ?= mlp_mnist
DEVICES ?=
VARIANTS ?=
SET ?=
ARGS ?=

RUN_OPTIONS := $(if $(DEVICES),--devices $(DEVICES)) $(if $(VARIANTS),--variants $(VARIANTS)) \
	$(foreach assignment,$(SET),--set $(assignment)) $(ARGS)

.PHONY: install experiment compare plot study list report readme test bench clean-venv

$(BIN)/.installed: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,cluster,bert]'
	touch $@

install: $(BIN)/.installed

experiment: install
	$(BIN)/dlbench run $(NAME) $(RUN_OPTIONS)

compare: install
	$(BIN)/dlbench compare $(NAME)

plot: install
	$(BIN)/dlbench plot $(NAME)

# make study NAME=mlp_learning_rate [SET="epochs=3"]
study: install
	$(BIN)/dlbench study $(NAME) $(RUN_OPTIONS)

list: install
	$(BIN)/dlbench list

# results/report.html (self-contained page) and results/REPORT.md, from every experiment's records.
report: install
	$(BIN)/dlbench report

# README.md's topic table, docs/measurements.md and the topic pages' variants, from the records and declarations.
readme: install
	$(BIN)/python scripts/update_readme.py

test: install
	$(BIN)/python -m pytest -q tests

bench: install
	$(BIN)/python benchmarks/mlp_epoch.py $(ARGS)

clean-venv:
	rm -rf $(VENV)

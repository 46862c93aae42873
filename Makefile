# Every target creates .venv and installs nnlab (with dev extras) when missing,
# so `make demo` and `make test` are the whole set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/nnlab run toy --dataset all --out runs/demo/toy --overwrite

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/numpy_vs_torch.py
	$(BIN)/python benchmarks/cifar_mlp.py
	$(BIN)/python benchmarks/cifar_cnn.py --net vgg
	$(BIN)/python benchmarks/cifar_cnn.py --net speedrun
	$(BIN)/python benchmarks/checkpoint_cost.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache

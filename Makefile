# Every target creates .venv and installs nnlab (with dev extras) when missing,
# so `make demo` and `make test` are the whole set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lint bench bench-docs clean reference docs tables

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The whole study at a preview size, then its report (its time on a named CPU: the README). Set
# NNLAB_DATA to a CIFAR-10 copy for the CIFAR parts; without one they are skipped with a line.
demo: $(STAMP)
	$(BIN)/nnlab reproduce --profile quick --out runs/demo
	$(BIN)/nnlab report runs/demo

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

# Everything but the tests marked slow (killed and resumed subprocesses, the browser,
# torchrun, the longer trainings). One thread: the tests' tiny
# models run faster without a second one; 50 drawn command lines per fuzz test, not 1,200.
test-fast: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/lint-imports
	OMP_NUM_THREADS=1 NNLAB_FUZZ_EXAMPLES=50 $(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python benchmarks/numpy_vs_torch.py
	$(BIN)/python benchmarks/cifar_mlp.py
	$(BIN)/python benchmarks/cifar_cnn.py --net vgg
	$(BIN)/python benchmarks/cifar_cnn.py --net speedrun
	$(BIN)/python benchmarks/checkpoint_cost.py
	$(BIN)/python benchmarks/roofline.py
	$(BIN)/python benchmarks/muon_cost.py
	$(BIN)/python benchmarks/muon_lr_rule.py
	@if [ -n "$$NNLAB_DATA" ] && [ -n "$(ANCHORS)" ]; then \
	  $(BIN)/python benchmarks/airbench_pair.py --per-epoch --data "$$NNLAB_DATA" \
	    --anchors "$(ANCHORS)" --out runs/bench-epoch --train-limit 10000 --epochs 3 \
	    --val-size 1000; \
	else echo "speedrun per epoch beside the record's CPU port: set NNLAB_DATA and ANCHORS"; fi
	$(BIN)/python benchmarks/time_budget.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache

# The flag reference in docs/cli.md, regenerated from the parsers (a test checks it is
# current).
reference: $(STAMP)
	$(BIN)/python -c "from nnlab.cli import write_readme_reference as w; w('docs/cli.md')"

# The results tables of docs/*.md, regenerated from the run folders under docs/results/ (a
# test fails when one is not current).
tables: $(STAMP)
	$(BIN)/python -m nnlab.docs

# The documentation site (MkDocs + Material) into site/; --strict: a broken link fails it.
docs: reference tables
	$(BIN)/mkdocs build --strict

# The benchmarks the Performance page shows, each one's output kept in docs/results/bench/
# (then make tables). Run on a quiet machine: about 10 minutes on 2 cores.
BENCH_OUT := docs/results/bench
bench-docs: $(STAMP)
	mkdir -p $(BENCH_OUT)
	$(BIN)/python benchmarks/numpy_vs_torch.py > $(BENCH_OUT)/numpy_vs_torch.md.tmp
	$(BIN)/python benchmarks/rnn_speed.py > $(BENCH_OUT)/rnn_speed.md.tmp
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/cifar_mlp.py --without-dropout --batch-size 64 --budget-s 8 --rounds 2 > $(BENCH_OUT)/cifar_mlp.md.tmp
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/cifar_mlp.py --precisions fp32 --without-dropout --batch-size 512 --budget-s 8 --rounds 3 > $(BENCH_OUT)/cifar_mlp_dropout.md.tmp
	$(BIN)/python benchmarks/cifar_cnn.py --net vgg --budget-s 8 > $(BENCH_OUT)/cifar_cnn_vgg.md.tmp
	$(BIN)/python benchmarks/cifar_cnn.py --net speedrun --batch-size 128 --budget-s 8 > $(BENCH_OUT)/cifar_cnn_speedrun.md.tmp
	$(BIN)/python benchmarks/muon_cost.py --only speedrun > $(BENCH_OUT)/muon_cost.md.tmp
	$(BIN)/python benchmarks/checkpoint_cost.py > $(BENCH_OUT)/checkpoint_cost.md.tmp
	$(BIN)/python benchmarks/roofline.py > $(BENCH_OUT)/roofline.md.tmp
	$(BIN)/python benchmarks/time_budget.py > $(BENCH_OUT)/time_budget.md.tmp
	for f in $(BENCH_OUT)/*.md.tmp; do mv $$f $${f%.tmp}; done

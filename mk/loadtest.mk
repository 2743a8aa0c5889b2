# Load tests (locust, SLO-gated); `make bench` runs the benchmarks (mk/bench.mk, mk/container.mk).
#
# `make serve` in one terminal, then `make loadtest` in another.  The load only ever
# targets loopback (the locustfile refuses anything else) and is bounded in users and
# time.  Thresholds: LOADTEST_MAX_ERROR_RATE (0.01), LOADTEST_P99_MS (500).
# `make loadtest-step`: baseline -> overload -> baseline, judged per phase
# (loadtests/README.md); also LOADTEST_OVERLOAD_P99_MS (250), LOADTEST_REFUSAL_MS (10),
# LOADTEST_RECOVERY_S (5).

LOADTEST_HOST ?= http://127.0.0.1:3000
LOADTEST_USERS ?= 16
LOADTEST_SPAWN_RATE ?= 4
LOADTEST_RUN_TIME ?= 60s
LOADTEST_CSV ?= build/loadtest/locust
# Step load: the overload is about twice the users that saturate `make serve` on a 2-CPU
# machine (docs/benchmarks.md); phases in seconds.
LOADTEST_BASE_USERS ?= 16
LOADTEST_OVERLOAD_USERS ?= 200
LOADTEST_BASE_S ?= 20
LOADTEST_OVERLOAD_S ?= 30
LOADTEST_BACK_S ?= 20
LOADTEST_STEP_CSV ?= build/loadtest/step

.PHONY: loadtest bench

loadtest: ## Headless locust against LOADTEST_HOST (16 users, 60 s); exits non-zero when the SLO is missed
	@mkdir -p $(dir $(LOADTEST_CSV))
	$(PY) -m locust -f loadtests/locustfile.py --headless --only-summary \
		--host $(LOADTEST_HOST) --users $(LOADTEST_USERS) --spawn-rate $(LOADTEST_SPAWN_RATE) \
		--run-time $(LOADTEST_RUN_TIME) --stop-timeout 10 --csv $(LOADTEST_CSV)

.PHONY: loadtest-step
loadtest-step: ## Step load against LOADTEST_HOST: 16 users, 200 (overload), 16 again; exits non-zero when a phase misses
	@mkdir -p $(dir $(LOADTEST_STEP_CSV))
	LOADTEST_BASE_USERS=$(LOADTEST_BASE_USERS) LOADTEST_OVERLOAD_USERS=$(LOADTEST_OVERLOAD_USERS) \
	LOADTEST_BASE_S=$(LOADTEST_BASE_S) LOADTEST_OVERLOAD_S=$(LOADTEST_OVERLOAD_S) \
	LOADTEST_BACK_S=$(LOADTEST_BACK_S) LOADTEST_REPORT=$(LOADTEST_STEP_CSV)_verdict.json \
	$(PY) -m locust -f loadtests/step_load.py --headless --only-summary --host $(LOADTEST_HOST) \
		--stop-timeout 10 --csv $(LOADTEST_STEP_CSV)

bench: bench-serving bench-batch bench-container ## The benchmarks: `make bench-serving`, `make bench-batch`, then `make bench-container`

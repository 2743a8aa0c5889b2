# Load tests (locust, SLO-gated); `make bench` is the container benchmark (mk/container.mk).
#
# `make serve` in one terminal, then `make loadtest` in another.  The load only ever
# targets loopback (the locustfile refuses anything else) and is bounded in users and
# time.  Thresholds: LOADTEST_MAX_ERROR_RATE (0.01), LOADTEST_P99_MS (500).

LOADTEST_HOST ?= http://127.0.0.1:3000
LOADTEST_USERS ?= 16
LOADTEST_SPAWN_RATE ?= 4
LOADTEST_RUN_TIME ?= 60s
LOADTEST_CSV ?= build/loadtest/locust

.PHONY: loadtest bench

loadtest: ## Headless locust against LOADTEST_HOST (16 users, 60 s); exits non-zero when the SLO is missed
	@mkdir -p $(dir $(LOADTEST_CSV))
	$(PY) -m locust -f loadtests/locustfile.py --headless --only-summary \
		--host $(LOADTEST_HOST) --users $(LOADTEST_USERS) --spawn-rate $(LOADTEST_SPAWN_RATE) \
		--run-time $(LOADTEST_RUN_TIME) --stop-timeout 10 --csv $(LOADTEST_CSV)

bench: bench-container ## The container benchmark (same as `make bench-container`)

# Airflow: the ingestion and retrain-and-rebuild DAGs (airflow_dags/), run on this machine.
#
# `make install-airflow` adds requirements/airflow.lock (Airflow, pinned alike with
# dev.lock) to $(VENV), and Debian's docker-registry, the local image registry, when run
# as root. Locally the DAGs use the stand-ins of mk/mirror.mk (`make moto`, `make
# moto-bucket`) and `make registry`; settings are Airflow Variables (AIRFLOW_VAR_WINEQ_*).
# Every server listens on 127.0.0.1 only; the metadata database is SQLite.

AIRFLOW_LOCK := requirements/airflow.lock
AIRFLOW_STAMP := $(VENV)/.airflow-installed
AIRFLOW_LOCAL_HOME ?= build/airflow
AIRFLOW_PORT ?= 8080
REGISTRY_PORT ?= 5001
DAG ?= wine_data_ingestion
DATE ?= $(shell date -u +%F)
# e.g. 'rebuild|rollout' (a regex matching whole task ids): stop a local retrain run
# after the S3 mirror.
AIRFLOW_MARK_SUCCESS ?=

AIRFLOW_HOME_ABS := $(abspath $(AIRFLOW_LOCAL_HOME))
AIRFLOW_ENV := env AIRFLOW_HOME=$(AIRFLOW_HOME_ABS) \
	AIRFLOW__CORE__DAGS_FOLDER=$(abspath airflow_dags) \
	AIRFLOW__CORE__LOAD_EXAMPLES=False \
	AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=sqlite:///$(AIRFLOW_HOME_ABS)/airflow.db \
	AIRFLOW__CORE__PARALLELISM=2 AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG=1 \
	AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$(AIRFLOW_PORT)/execution/ \
	AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True \
	AIRFLOW_VAR_WINEQ_REGISTRY=$(or $(AIRFLOW_VAR_WINEQ_REGISTRY),127.0.0.1:$(REGISTRY_PORT))
# The mirror's bucket as the DAGs' Variable: the local default's with S3=local (mk/mirror.mk).
AIRFLOW_BUCKET_VAR = $(if $(filter local,$(S3)),AIRFLOW_VAR_WINEQ_S3_BUCKET=$(or \
	$(WINEQ_TRAIN_S3_BUCKET),wineq-models-local),$(if $(WINEQ_TRAIN_S3_BUCKET),\
	AIRFLOW_VAR_WINEQ_S3_BUCKET=$(WINEQ_TRAIN_S3_BUCKET)))
AIRFLOW := $(VENV)/bin/airflow

.PHONY: install-airflow
install-airflow: $(AIRFLOW_STAMP) ## Add Airflow (requirements/airflow.lock) to .venv; Debian's docker-registry too when root

$(AIRFLOW_STAMP): $(VENV_STAMP) $(AIRFLOW_LOCK)
	$(PY) -m pip install -q --require-hashes -r $(AIRFLOW_LOCK)
	$(PY) -m pip check
	@if ! command -v docker-registry >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
				apt-get install -y -qq --no-install-recommends docker-registry >/dev/null; \
		else echo "install Debian's docker-registry as root for the DAG tests" >&2; exit 1; fi; \
	fi
	touch $@

.PHONY: lock-airflow
lock-airflow: ## Re-pin requirements/airflow.lock: the airflow extra on top of dev.lock's pins
	$(PY) -m pip install -q uv
	$(VENV)/bin/uv pip compile pyproject.toml --extra serving --extra training --extra dev \
		--extra airflow -c requirements/dev.lock --generate-hashes --no-header \
		--python-version 3.11 -o $(AIRFLOW_LOCK)
	! grep -n '://' $(AIRFLOW_LOCK)

.PHONY: airflow-test
airflow-test: install-airflow docker-up base-image ## The DAG tests: DagBag, dag.test() of both DAGs against moto, the registry and Docker
	$(PY) -m pytest tests/airflow $(PYTEST_ARGS)

.PHONY: registry
registry: ## Run Debian's docker-registry on 127.0.0.1:$(REGISTRY_PORT) in the foreground (the DAG's local registry)
	@mkdir -p build/registry
	@printf '%s\n' 'version: 0.1' 'storage: {filesystem: {rootdirectory: $(abspath build/registry)}}' \
		'http: {addr: "127.0.0.1:$(REGISTRY_PORT)"}' > build/registry/config.yml
	docker-registry serve build/registry/config.yml

.PHONY: airflow-dag-test
airflow-dag-test: install-airflow ## dag.test() of DAG=<id> for DATE=<YYYY-MM-DD> against `make moto` (S3=aws: real AWS)
	@mkdir -p $(AIRFLOW_HOME_ABS)
	$(AIRFLOW_ENV) $(AIRFLOW) db migrate >/dev/null
	$(MIRROR_ENV) $(AIRFLOW_ENV) $(AIRFLOW_BUCKET_VAR) $(AIRFLOW) dags test $(DAG) $(DATE) \
		$(if $(AIRFLOW_MARK_SUCCESS),--mark-success-pattern '$(AIRFLOW_MARK_SUCCESS)')

# `airflow standalone` would also start log servers on every interface: these three are
# what a LocalExecutor needs, with the API server (and UI) bound to loopback.
.PHONY: airflow-local
airflow-local: install-airflow ## Scheduler, DAG processor and UI on http://127.0.0.1:$(AIRFLOW_PORT) (SQLite, parallelism 2)
	@mkdir -p $(AIRFLOW_HOME_ABS)
	$(AIRFLOW_ENV) $(AIRFLOW) db migrate >/dev/null
	$(MIRROR_ENV) $(AIRFLOW_ENV) $(AIRFLOW_BUCKET_VAR) bash -c 'trap "kill 0" EXIT; \
		$(AIRFLOW) scheduler --skip-serve-logs & $(AIRFLOW) dag-processor & \
		$(AIRFLOW) api-server --host 127.0.0.1 --port $(AIRFLOW_PORT) --workers 1 & wait'

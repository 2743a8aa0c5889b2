# The container path: stand-in base image, local Docker engine, image build, tests, bench.
# `containerize` tags wine-quality:<model version>-<git short sha> (plus -dirty for an
# uncommitted tree) and nothing else: no `latest`.

FORCE ?= 0

.PHONY: docker-up
docker-up: ## Start a local Docker engine (dockerd) when none answers
	scripts/start_docker.sh

.PHONY: base-image
base-image: docker-up ## The base image python:3.11-slim when missing: pulled, or the debootstrap stand-in where no registry answers (FORCE=1 rebuilds)
	FORCE=$(FORCE) scripts/build_base_image.sh

.PHONY: containerize
containerize: docker-up base-image train-if-missing ## bentoml build + containerize: image wine-quality:<model version>-<git sha>
	$(PY) scripts/container_image.py build $(if $(filter 1,$(FORCE)),--force,)

.PHONY: test-container
test-container: install docker-up base-image ## Run the container tests (image under the Fargate limits)
	$(PY) -m pytest -m container tests/container

.PHONY: bench-container
bench-container: containerize ## Image beside BASELINE_IMAGE=<tag> at 0.25 vCPU / 512 MB: cold start, memory, /predict capacity; JSON in build/bench/, table in docs/benchmarks.md (BENCH_ARGS: --runs N, --serve, ...)
	$(PY) scripts/bench_container.py --image "$$($(PY) scripts/container_image.py tag)" \
		$(if $(BASELINE_IMAGE),--baseline-image $(BASELINE_IMAGE)) $(BENCH_ARGS)
	$(PY) scripts/bench_table.py

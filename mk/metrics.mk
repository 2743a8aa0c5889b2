# CloudWatch metrics: see them locally, and measure the exporter's cost.
#
# `make metrics-local` runs the moto server (a real CloudWatch API) and the service on
# 127.0.0.1 with the exporter pointed at moto, sends a few requests and prints what
# CloudWatch holds every interval until Ctrl-C. Other WINEQ_* settings pass through
# (e.g. `WINEQ_METRICS_BY_CLASS=true make metrics-local`).
#
# `make bench-exporter` runs the image at 0.25 vCPU / 512 MB without the exporter, with
# it and CloudWatch answering, and with it and CloudWatch down, side by side in the same
# rounds, and writes the "Exporter" section of docs/benchmarks.md (BENCH_EXPORTER_ARGS:
# --rounds N, --duration S, --connections N, --interval S, --image TAG).

METRICS_MOTO_PORT ?= 5000

.PHONY: metrics-local bench-exporter

metrics-local: train-if-missing ## moto + the service on $(HOST):$(PORT), a few requests, then what CloudWatch received, every 5 s (Ctrl-C stops)
	$(PY) scripts/cloudwatch_local.py --port $(PORT) --moto-port $(METRICS_MOTO_PORT)

bench-exporter: containerize ## Image at 0.25 vCPU with and without the exporter, CloudWatch up and down; section "Exporter" of docs/benchmarks.md
	$(PY) scripts/bench_exporter.py --image "$$($(PY) scripts/container_image.py tag)" $(BENCH_EXPORTER_ARGS)

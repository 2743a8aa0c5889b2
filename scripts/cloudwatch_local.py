"""See what the exporter sends to CloudWatch, locally: `make metrics-local`.

Starts the moto server (a real CloudWatch API) and the service on 127.0.0.1 with the
exporter pointed at it, sends a few requests, then prints what CloudWatch holds after
every interval until Ctrl-C.  Send your own traffic meanwhile; other WINEQ_* settings
(e.g. WINEQ_METRICS_BY_CLASS=true) pass through to the service.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from training.features import EXAMPLE_FEATURES

# Dummy credentials are what moto accepts; they are not secrets.
MOTO_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Poll ``url`` until it answers 200; fail if ``process`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{process.args!r} exited with {process.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.25)
    sys.exit(f"{url} did not answer in {timeout:.0f} s")


def demo_traffic(url: str) -> None:
    """A few answers of each kind: predictions, a batch, a refused request."""
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(3):
            client.post("/predict", json={"features": EXAMPLE_FEATURES})
        client.post("/predict/batch", json={"features_list": [EXAMPLE_FEATURES] * 5})
        client.post("/predict", json={"features": {"alcohol": -1}})


def show(cloudwatch: Any, namespace: str) -> None:
    """Print every metric/dimension combination in ``namespace`` with its last hour."""
    now = datetime.now(UTC)
    combinations: dict[tuple[str, tuple[tuple[str, str], ...]], list[dict[str, str]]] = {}
    for metric in cloudwatch.list_metrics(Namespace=namespace)["Metrics"]:
        dims = tuple(sorted((d["Name"], d["Value"]) for d in metric["Dimensions"]))
        combinations[(metric["MetricName"], dims)] = metric["Dimensions"]
    raw: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, float, float]] = {}
    for (name, dims), dimensions in combinations.items():
        points = cloudwatch.get_metric_statistics(
            Namespace=namespace,
            MetricName=name,
            Dimensions=dimensions,
            StartTime=now - timedelta(hours=1),
            EndTime=now + timedelta(minutes=1),
            Period=3600,
            Statistics=["Sum", "SampleCount", "Maximum"],
        )["Datapoints"]
        raw[(name, dims)] = (
            sum(p["Sum"] for p in points),
            sum(p["SampleCount"] for p in points),
            max((p["Maximum"] for p in points), default=0.0),
        )
    # moto matches a query's dimensions as a subset (CloudWatch matches them exactly):
    # a Service-only rollup's raw figures include every series that has more dimensions.
    rows = []
    for (name, dims), (total, samples, peak) in raw.items():
        for (other, more), (t, s, _) in raw.items():
            if other == name and set(dims) < set(more):
                total, samples = total - t, samples - s
        extra = ",".join(v for k, v in dims if k not in ("Service", "ModelVersion"))
        if not any(k == "ModelVersion" for k, _ in dims):
            extra = "(all versions)"
        rows.append((name, extra, total, samples, peak))
    print(f"\n{now:%H:%M:%S} {namespace}: {len(rows)} metric/dimension combinations")
    print(f"{'metric':<20} {'dimension':<16} {'sum':>10} {'samples':>8} {'max':>10}")
    for name, extra, total, samples, peak in sorted(rows):
        print(f"{name:<20} {extra:<16} {total:>10g} {samples:>8g} {peak:>10g}")


def main() -> None:
    """Run moto and the service, show the metrics every interval until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--moto-port", type=int, default=5000)
    parser.add_argument("--namespace", default="WineQualityLocal")
    parser.add_argument("--interval", type=float, default=5.0)
    args = parser.parse_args()
    moto_url = f"http://127.0.0.1:{args.moto_port}"
    env = {**os.environ, **MOTO_ENV, "AWS_ENDPOINT_URL": moto_url}
    env.setdefault("WINEQ_METRICS_NAMESPACE", args.namespace)
    env.setdefault("WINEQ_METRICS_INTERVAL_S", str(args.interval))
    started: list[subprocess.Popen[bytes]] = []
    try:
        moto = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(args.moto_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(moto)
        wait_for(f"{moto_url}/moto-api/", moto)
        service = subprocess.Popen(
            [sys.executable, "-m", "bento.launch", "--host", "127.0.0.1", "--port", str(args.port)],
            env=env,
        )
        started.append(service)
        url = f"http://127.0.0.1:{args.port}"
        wait_for(f"{url}/readyz", service)
        demo_traffic(url)
        import boto3

        os.environ.update({**MOTO_ENV, "AWS_ENDPOINT_URL": moto_url})
        cloudwatch = boto3.client("cloudwatch")
        print(f"Serving on {url}; CloudWatch (moto) on {moto_url}. Ctrl-C stops both.")
        while True:
            time.sleep(float(env["WINEQ_METRICS_INTERVAL_S"]) + 1)
            show(cloudwatch, env["WINEQ_METRICS_NAMESPACE"])
    except KeyboardInterrupt:
        pass
    finally:
        for process in reversed(started):
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(30)


if __name__ == "__main__":
    main()

"""Render a serving benchmark's JSON (scripts/bench_serving.py) into its section of
docs/benchmarks.md, and print it.

    python scripts/bench_serving_table.py [RESULTS.json] [--doc docs/benchmarks.md] [--no-doc]

Without a file, the newest build/bench/serving-*.json. Only the section headed
SECTION_TITLE is replaced (or appended); the rest of the document stays byte for byte.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

if __package__ in (None, ""):  # run as a file: make `scripts` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.bench_table import DOC, REPO_ROOT, RESULTS_DIR, replace_section

SECTION_TITLE: Final = "## Serving side by side (one core and 0.25 vCPU)"
BATCH_TITLE: Final = "## Batch side by side (/predict/batch, one core and 0.25 vCPU)"


def title(report: Mapping[str, Any]) -> str:
    """The section a run writes: batch runs have their own."""
    return BATCH_TITLE if report.get("batch_rows") else SECTION_TITLE


def _num(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def closed_rows(report: Mapping[str, Any]) -> list[str]:
    """One table row per subject, limit and connection count, over the rounds."""
    groups: dict[tuple[str, str, int], list[Mapping[str, Any]]] = {}
    for row in report["closed_loop"]:
        groups.setdefault((row["limit"], row["subject"], row["connections"]), []).append(row)
    order = {name: i for i, name in enumerate(report["subjects"])}
    limits = list(report["limits"])
    batch = report.get("batch_rows") or 0
    lines = []
    for (limit, subject, connections), rows in sorted(
        groups.items(), key=lambda g: (limits.index(g[0][0]), order[g[0][1]], g[0][2])
    ):
        rates = [r["good_rps"] for r in sorted(rows, key=lambda r: r["round"])]
        lines.append(
            f"| {subject} | {limit} | {connections} | {_num(statistics.median(rates))} "
            f"| {', '.join(_num(r) for r in rates)} "
            f"| {_num(_median(r['p50_ms'] for r in rows), 1)} "
            f"| {_num(_median(r['p99_ms'] for r in rows), 1)} "
            f"| {sum(r['non_2xx'] for r in rows)} / {sum(r['socket_errors'] for r in rows)} "
            f"| {_num(max(r['idle_rss_mb'] for r in rows))} / "
            f"{_num(max(r['peak_rss_mb'] for r in rows))} "
            f"| {_num(_median(r['server_cpu'] for r in rows), 2)} "
            f"| {_cpu_per_answer(rows)} "
            f"| {_num(_median(r['client_cpu'] for r in rows), 2)} |"
            + (f" {_num(statistics.median(rates) * batch)} |" if batch else "")
        )
    return lines


def _cpu_per_answer(rows: Iterable[Mapping[str, Any]]) -> str:
    """Median server CPU time per good answer, in microseconds (CPU-s per s over req/s)."""
    per = [1e6 * r["server_cpu"] / r["good_rps"] for r in rows if r["good_rps"]]
    return _num(statistics.median(per)) if per else "–"


def _probe(p: Mapping[str, Any], p99_bound: float) -> str:
    ok = p["good"] == p["sent"] and p["p99_ms"] is not None and p["p99_ms"] <= p99_bound
    return f"{p['rate']:g} {'✓' if ok else '✗'} {_num(p['p99_ms'])}"


def overload_rows(report: Mapping[str, Any]) -> list[str]:
    """One table row per step load (twice the capacity, then half of it)."""
    lines = []
    for row in report["open_loop"]:
        o = row.get("overload")
        if not o:
            continue
        seconds = o["seconds"]
        lines.append(
            f"| {row['subject']} | {row['limit']} | {_num(o['high'])} → {_num(o['low'])} "
            f"| {_num(o['overload_good'] / seconds)} | {_num(o['admitted_p99_ms'], 1)} "
            f"| {_num(o['overload_refused'] / seconds)} "
            f"| {_num(o['refused_p50_ms'], 1)} / {_num(o['refused_p99_ms'], 1)} "
            f"| {o['overload_errors']} | {_num(o['recovery_s'], 2)} "
            f"| {_num(o['after_p99_ms'], 1)} | {_num(o['peak_rss_mb'])} |"
        )
    return lines


def open_rows(report: Mapping[str, Any]) -> list[str]:
    """One table row per open-loop search."""
    bound = report["settings"]["p99_ms"]
    lines = []
    for row in report["open_loop"]:
        last = row["confirms"][-1] if row["confirms"] else None
        held = row["held"]
        lines.append(
            f"| {row['subject']} | {row['limit']} | {_num(held['rate']) if held else 'none'} "
            f"| {_num(held['p50_ms'], 1) if held else '–'} "
            f"| {_num(held['p99_ms'], 1) if held else '–'} "
            f"| {_num(last['server_cpu'], 2) if last else '–'} "
            f"| {_num(last['client_cpu'], 2) if last else '–'} "
            f"| {_num(last['max_lag_ms'], 1) if last else '–'} "
            f"| {_num(last['peak_rss_mb']) if last else '–'} "
            f"| {', '.join(_probe(p, bound) for p in row['probes'] + row['confirms'])} |"
        )
    return lines


def render(report: Mapping[str, Any], source: str) -> str:
    """The Markdown section (heading included) for one run's results."""
    c, s, v = report["conditions"], report["settings"], report["conditions"]["versions"]
    batch = report.get("batch_rows") or 0
    mls = report.get("mlserver", {})
    mv = mls.get("versions", {})
    note = f" ({mls['note']})" if mls.get("note") else ""
    loads = f"{'/'.join(map(str, c['load_average_start']))} at the start, " + "/".join(
        map(str, c["load_average_end"])
    )
    return "\n".join([
        title(report),
        "",
        *(
            [
                f"Each request is a `/predict/batch` of {report['batch_rows']} real wines "
                "(the UCI files' first rows, red and white alternating); rows/s is good "
                f"req/s × {report['batch_rows']}.",
                "",
            ]
            if report.get("batch_rows")
            else []
        ),
        f"Written by `make {'bench-batch' if batch else 'bench-serving'}` "
        f"(`scripts/bench_serving.py`, raw results `{source}`). "
        f"Run {c['date']} at commit `{c['commit']}` on `{report['model']['tag']}`; "
        f"{c['cpu_model']}, {c['cores']} cores, kernel {c['kernel']}; host load average "
        f"{loads} at the end; speed probe (CPU time of a fixed pure-Python loop, lower is "
        f"faster) {c['speed_probe_start_s']} s at the start, {c['speed_probe_end_s']} s at "
        f"the end. Python {c['python']}, bentoml {v.get('bentoml')}, onnxruntime "
        f"{v.get('onnxruntime')}, uvicorn {v.get('uvicorn')}, uvloop {v.get('uvloop')}, "
        f"httptools {v.get('httptools')}, {v.get('wrk')}; MLServer {mv.get('mlserver', '–')} "
        f"with mlserver-sklearn {mv.get('mlserver-sklearn', '–')} and scikit-learn "
        f"{mv.get('scikit-learn', '–')}{note}.",
        "",
        "Subjects, one process each on 127.0.0.1, the same forest: `service` is this tree's "
        "`python -m bento.launch` (ONNX Runtime engine, adaptive batching); "
        "`service@<ref>` the same at earlier commits, one per lever (a git worktree each, same "
        "venv and model); "
        "`mlserver` Seldon MLServer's scikit-learn runtime on the store entry's "
        "`model.joblib`, V2 protocol, adaptive batching of up to 32 rows in 5 ms, "
        "`parallel_workers` 0 (inference in the server process), metrics server off; "
        "`asgi-ceiling` a bare ASGI app under uvicorn (httptools, uvloop) that parses the body "
        "and answers a constant (`scripts/asgi_ceiling.py`): the most a one-process Python "
        "server answers here. Limits: `1 core` pins the server to core 1 (`taskset`) and the "
        "load to core 0; `0.25 vCPU / 512 MB` also runs the server in a cgroup (v1) with a CFS "
        "quota of 25 ms per 100 ms and a 512 MB memory limit, as the Fargate task (the real "
        "image at those limits: \"Container (Fargate limits)\" above).",
        "",
        f"Closed loop: wrk (one thread) posting one row back to back, {s['warmup']} s warm-up "
        f"then {s['duration']} s counted, {s['rounds']} round(s) alternating the subjects' "
        "order (the machine is shared and its speed drifts: only numbers of one run compare). "
        "Good req/s is the median over the rounds (each round after it); p50 and p99 are "
        "wrk's, medians over the rounds; errors are non-2xx answers / socket errors (connect, "
        "read, write, 5 s timeout), summed; RSS sums the server's processes, idle and the peak "
        "of 0.5 s samples under load (largest over the rounds); CPU is cores used over the "
        "counted window (server: its cgroup; client: wrk).",
        "",
        "| Subject | Limit | Connections | Good req/s | Each round | p50 ms | p99 ms "
        "| Non-2xx / socket errors | RSS idle / peak MB | Server CPU | CPU µs / answer "
        "| Client CPU |" + (" Rows/s |" if batch else ""),
        "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if batch else ""),
        *closed_rows(report),
        "",
        *([] if batch else open_and_overload(report)),
        *[f"Failed: {failure}\n" for failure in report.get("failures", [])],
    ])  # fmt: skip


def open_and_overload(report: Mapping[str, Any]) -> list[str]:
    """The open-loop and overload tables (runs of one-row requests only)."""
    s = report["settings"]
    return [
        f"Open loop: requests leave at a constant rate whatever the answers, and latency runs "
        f"from each request's scheduled send time, so a stall is charged to every request "
        f"behind it (`scripts/open_loop.py`: asyncio and uvloop on core 0, keep-alive, at most "
        f"{s['open_connections']} connections). The highest rate held with p99 ≤ "
        f"{s['p99_ms']:g} ms and every answer 2xx: up to {s['probes']} probes of "
        f"{s['probe_duration']:g} s (1 s warm-up) bisecting from half the closed loop's best "
        f"req/s (1.2× it taken as too high), then one {s['open_duration']:g} s window at the "
        f"rate found ({s['warmup']} s warm-up; when it fails, at 90 % then 80 % of it). Every "
        "step, closed or open, starts once the server is idle again. CPU, the client's lateness "
        "behind its schedule and the server's peak RSS are those of the last confirming "
        "window; the steps list rate ✓/✗ p99 ms, probes then confirmations.",
        "",
        "| Subject | Limit | Held req/s | p50 ms | p99 ms | Server CPU | Client CPU "
        "| Client lag ms | Peak RSS MB | Steps |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
        *(open_rows(report) or ["| – | – | – | – | – | – | – | – | – | not run |"]),
        "",
        "Overload: right after the open-loop search, twice the closed loop's best req/s for "
        f"{s.get('overload_duration', '–')} s, then half of it for as long, without a pause "
        "(`scripts/open_loop.py` `step_load`, same client). Admitted are the 2xx answers, "
        "refused the 503s, both timed from the scheduled send; errors are any other answer "
        "or none; recovery is the time from the drop to the answer of the last non-2xx "
        "request sent after it (0: none).",
        "",
        "| Subject | Limit | req/s sent (over → after) | Admitted/s | Admitted p99 ms "
        "| Refused/s | Refused p50 / p99 ms | Errors | Recovery s | After p99 ms "
        "| Peak RSS MB |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(overload_rows(report) or ["| – | – | – | – | – | – | – | – | – | – | not run |"]),
        "",
    ]


def newest_results() -> Path:
    """The most recent build/bench/serving-*.json."""
    found = sorted(RESULTS_DIR.glob("serving-*.json"))
    if not found:
        raise SystemExit(f"no serving-*.json in {RESULTS_DIR}: run scripts/bench_serving.py")
    return found[-1]


def main(argv: Sequence[str] | None = None) -> int:
    """Render the results, print them and rewrite the document's section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("results", nargs="?", type=Path, help="JSON of scripts/bench_serving.py")
    parser.add_argument("--doc", type=Path, default=DOC, help="Markdown file to update")
    parser.add_argument("--no-doc", action="store_true", help="only print the section")
    args = parser.parse_args(argv)
    results = (args.results or newest_results()).resolve()
    shown = results.relative_to(REPO_ROOT) if results.is_relative_to(REPO_ROOT) else results
    report = json.loads(results.read_text())
    section = render(report, str(shown))
    print(section)
    if not args.no_doc:
        heading = title(report)
        args.doc.write_text(replace_section(args.doc.read_text(), heading, section))
        print(f"updated '{heading}' in {args.doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

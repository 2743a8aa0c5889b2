"""Render a container benchmark's JSON into its section of docs/benchmarks.md.

    python scripts/bench_table.py [RESULTS.json] [--doc docs/benchmarks.md]

Without a file, the newest build/bench/container-*.json. Only the section headed
``## Container (Fargate limits)`` is replaced (or appended when the document lacks it);
the rest of the document stays byte for byte.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
RESULTS_DIR: Final = REPO_ROOT / "build" / "bench"
DOC: Final = REPO_ROOT / "docs" / "benchmarks.md"
SECTION_TITLE: Final = "## Container (Fargate limits)"
_HEADING: Final = re.compile(r"^#{1,2} ")


def replace_section(text: str, title: str, section: str) -> str:
    """``text`` with the section headed ``title`` (up to the next level-1 or level-2
    heading outside a code block) replaced by ``section``, or ``section`` appended."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == title), None)
    if start is None:
        return text.rstrip("\n") + "\n\n" + section
    in_code, end = False, len(lines)
    for i in range(start + 1, len(lines)):
        in_code ^= lines[i].lstrip().startswith("```")
        if not in_code and _HEADING.match(lines[i]):
            end = i
            break
    tail = "".join(lines[end:])
    return "".join(lines[:start]) + section + ("\n" + tail if tail else "")


def _num(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def good_rates(report: Mapping[str, Any]) -> dict[str, float]:
    """Median good req/s of each image over its load rounds."""
    rates: dict[str, list[float]] = {}
    for i in report["images"]:
        rates.setdefault(i["label"], []).append(i["good"] / i["seconds"])
    return {label: statistics.median(values) for label, values in rates.items()}


def render(report: Mapping[str, Any], source: str) -> str:
    """The Markdown section (heading included) for one run's results."""
    c, load, limits = report["conditions"], report["load"], report["limits"]
    starts = [
        f"| {s['label']} | `{s['image']}`{' ' + ' '.join(s['command']) if s['command'] else ''} "
        f"| {_num(statistics.median(s['ready_s']), 1)} "
        f"| {', '.join(f'{x:.1f}' for x in s['ready_s'])} "
        f"| {_num(statistics.median(s['cpu_s']), 2)} |"
        for s in report["starts"]
    ]
    images = [
        f"| {i['label']} | {i['round_no'] + 1} | `{i['image']}` | `{i['model_version'] or '?'}` "
        f"| {_num(i['size_mb'])} "
        f"| {_num(i['idle_cgroup_mb'])} / {_num(i['idle_rss_mb'])} "
        f"| {_num(i['load_cgroup_mb'])} / {_num(i['load_rss_mb'])} "
        f"| {_num(i['good'] / i['seconds'])} | {_num(i['p50_ms'])} | {_num(i['p99_ms'])} "
        f"| {i['errors']} | {i['rejected_503']} | {_num(i['server_cpu'], 2)} "
        f"| {_num(i['client_cpu'], 2)} |"
        for i in report["images"]
    ]
    runs = len(report["starts"][0]["ready_s"])
    return "\n".join([
        SECTION_TITLE,
        "",
        f"Written by `make bench-container` (`scripts/bench_container.py`, raw results "
        f"`{source}`, rendered by `scripts/bench_table.py`). Run {c['date']} at commit "
        f"`{c['commit']}`; {c['cpu_model']}, {c['cores']} cores, kernel {c['kernel']}, "
        f"Docker {c['docker']}; host load average {'/'.join(map(str, c['load_average_start']))}"
        f" at the start, {'/'.join(map(str, c['load_average_end']))} at the end. Every "
        f"container runs under `docker run --cpus {limits['cpus']} --memory {limits['memory']}`"
        " (the Fargate task). The machine may be shared and its speed drifts, so the starts "
        "alternate their order every round and only numbers of the same run compare.",
        "",
        f"Cold start, `docker run` until `/readyz` answers 200 ({runs} rounds); CPU-s to "
        "ready is the container's cgroup CPU time at that moment:",
        "",
        "| Start | Image | Median s | Each run s | CPU-s to ready (median) |",
        "|---|---|---:|---|---:|",
        *starts,
        "",
        f"Single-row `POST /predict`, closed loop of {load['connections']} connections, "
        f"{load['warmup_s']:g} s warm-up then {load['duration_s']:g} s counted. Memory in MB: "
        "cgroup is what the limit counts (usage minus inactive page cache), RSS sums the "
        "container's processes; under load is the peak of 1 s samples. Server and client "
        "CPU are cores used during the counted window (the quota caps the server).",
        "",
        "| Image | Round | Tag | Model | Size MB | Idle cgroup / RSS | Load cgroup / RSS "
        "| Good req/s | p50 ms | p99 ms | Errors | 503 | Server CPU | Client CPU |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *images,
        "",
        "Median good req/s over the rounds: "
        + ", ".join(f"{label} {_num(rate)}" for label, rate in good_rates(report).items())
        + ".",
        "",
    ])  # fmt: skip


def newest_results() -> Path:
    """The most recent build/bench/container-*.json."""
    found = sorted(RESULTS_DIR.glob("container-*.json"))
    if not found:
        raise SystemExit(f"no container-*.json in {RESULTS_DIR}: run scripts/bench_container.py")
    return found[-1]


def main(argv: Sequence[str] | None = None) -> int:
    """Render the results and rewrite the document's section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("results", nargs="?", type=Path, help="JSON of scripts/bench_container.py")
    parser.add_argument("--doc", type=Path, default=DOC, help="Markdown file to update")
    args = parser.parse_args(argv)
    results = args.results or newest_results()
    source = results.resolve()
    shown = source.relative_to(REPO_ROOT) if source.is_relative_to(REPO_ROOT) else source
    section = render(json.loads(results.read_text()), str(shown))
    args.doc.write_text(replace_section(args.doc.read_text(), SECTION_TITLE, section))
    print(section)
    print(f"updated '{SECTION_TITLE}' in {args.doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

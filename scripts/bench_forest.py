"""Benchmark forest sizes: nodes, accuracy, and the ONNX session of the full and compact export.

For each forest configuration (trees, fewest rows per leaf), seed 42, trained on all of
the UCI data: the number of tree nodes; the cross-validated accuracy per wine type under
both protocols of training/evaluate.py; and the forest exported to ONNX twice, as
skl2onnx writes it (``to_onnx(forest, compact=False)``) and compacted as the service
ships it (``to_onnx(forest)``).  Each export is measured in fresh subprocesses: file
size, the resident memory its ``onnxruntime.InferenceSession`` adds and the CPU time of
creating it (median of several processes, full and compact interleaved so that drift in
a shared machine's speed hits both).  Prints the "## Forest size" section of
docs/benchmarks.md and, with ``--update-doc``, rewrites only that section.

    python scripts/bench_forest.py [--configs 60x3,100x1] [--rounds 5] [--no-accuracy]
        [--skip-accuracy 300x1] [--update-doc docs/benchmarks.md] [--render RUN.json]

Every run's raw numbers are saved to build/bench/forest-<time>.json; ``--render`` prints
(and with ``--update-doc`` writes) the section of a saved run again without measuring.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if __package__ in (None, ""):  # run as a file: make `scripts`, `training`, `bento` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.bench_host import RESULTS_DIR, cpu_model, host_cpu_ticks, round_order
from scripts.doc_sections import publish
from training.checksums import sha256_bytes
from training.features import WINE_TYPES

if TYPE_CHECKING:
    import pandas as pd

    from training.settings import TrainingSettings

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
SCRIPT: Final = Path(__file__).resolve()
SECTION_TITLE: Final = "## Forest size"
COMMAND: Final = "python scripts/bench_forest.py --update-doc docs/benchmarks.md"

SEED: Final = 42
Config = tuple[int, int]  # (trees, fewest rows per leaf)
DEFAULT_CONFIGS: Final[tuple[Config, ...]] = (
    (300, 1),
    (100, 1),
    (100, 2),
    (100, 3),
    (100, 5),
    (80, 3),
    (60, 3),
    (60, 2),
)
DEFAULT_ROUNDS: Final = 5
EXPORTS: Final = ("full", "compact")
NOT_RUN: Final = "not run"
MIB: Final = 1024 * 1024


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Probe:
    """One fresh process creating one session."""

    baseline_kib: int  # VmRSS before creating the session (Python, numpy, onnxruntime loaded)
    after_kib: int  # VmRSS right after
    peak_kib: int  # VmHWM right after: the highest RSS the process has had
    cpu_s: float  # time.process_time around the constructor
    wall_s: float
    digest: str  # SHA-256 of the probabilities the session gives for every row

    @property
    def session_mib(self) -> float:
        """Resident memory the session added."""
        return (self.after_kib - self.baseline_kib) / 1024

    @property
    def peak_mib(self) -> float:
        """Highest resident memory above the baseline while the session was created."""
        return (self.peak_kib - self.baseline_kib) / 1024


@dataclass(frozen=True)
class Export:
    """One ONNX export of a forest and the sessions created from it."""

    file_bytes: int
    probes: tuple[Probe, ...]

    @property
    def file_mib(self) -> float:
        """File size in MiB."""
        return self.file_bytes / MIB

    @property
    def session_mib(self) -> float:
        """Median resident memory the session added."""
        return statistics.median(p.session_mib for p in self.probes)

    @property
    def peak_mib(self) -> float:
        """Median peak above the baseline during creation."""
        return statistics.median(p.peak_mib for p in self.probes)

    @property
    def cpu_s(self) -> float:
        """Median CPU time of creating the session."""
        return statistics.median(p.cpu_s for p in self.probes)

    @property
    def baseline_mib(self) -> float:
        """Median RSS of the measuring process before it created the session."""
        return statistics.median(p.baseline_kib / 1024 for p in self.probes)


@dataclass(frozen=True)
class ConfigResult:
    """Everything measured for one forest configuration."""

    trees: int
    min_leaf: int
    nodes: int
    # protocol ("paper" = (a), "grouped" = (b)) -> wine type -> accuracy; None: not run
    accuracy: dict[str, dict[str, float]] | None
    full: Export
    compact: Export

    @property
    def config(self) -> Config:
        """(trees, fewest rows per leaf)."""
        return (self.trees, self.min_leaf)

    def export(self, name: str) -> Export:
        """The 'full' or 'compact' export."""
        return self.full if name == "full" else self.compact

    def paired_cpu_ratios(self) -> list[float]:
        """Compact / full creation CPU of each round (the two ran next to each other)."""
        return [
            c.cpu_s / f.cpu_s for f, c in zip(self.full.probes, self.compact.probes, strict=True)
        ]

    def outputs_identical(self) -> bool:
        """Whether every compact session scored every row exactly like every full one."""
        return len({p.digest for p in (*self.full.probes, *self.compact.probes)}) == 1


@dataclass(frozen=True)
class Run:
    """One benchmark run."""

    started: str  # "YYYY-MM-DD HH:MM UTC"
    wall_s: float
    rounds: int
    rows: int
    environment: dict[str, str]
    settings: dict[str, str]  # hyper-parameters shared by every configuration
    load_before: tuple[float, float, float]  # host load average at the start of the run
    load_after: tuple[float, float, float]  # ... and at the end of the session phase
    other_load: float  # cores busy with other work during the session phase
    accuracy_skipped: tuple[Config, ...]  # configs whose accuracy was left out on request
    results: tuple[ConfigResult, ...]
    default: Config  # the project's default forest (TrainingSettings)


def _export_from_dict(data: dict[str, Any]) -> Export:
    return Export(data["file_bytes"], tuple(Probe(**p) for p in data["probes"]))


def run_from_dict(data: dict[str, Any]) -> Run:
    """A Run from its saved JSON form (``dataclasses.asdict``): JSON keeps the numbers and
    strings, so only the tuples and the nested dataclasses are rebuilt."""
    results = tuple(
        ConfigResult(
            **{
                **r,
                "full": _export_from_dict(r["full"]),
                "compact": _export_from_dict(r["compact"]),
            }
        )
        for r in data["results"]
    )
    return Run(
        **{
            **data,
            "load_before": tuple(data["load_before"]),
            "load_after": tuple(data["load_after"]),
            "accuracy_skipped": tuple(tuple(config) for config in data["accuracy_skipped"]),
            "results": results,
            "default": tuple(data["default"]),
        }
    )


# --------------------------------------------------------------------------- options


def parse_configs(text: str) -> tuple[Config, ...]:
    """'60x3,100x1' -> ((60, 3), (100, 1)): trees x fewest rows per leaf, in the given order."""
    configs: list[Config] = []
    for item in text.split(","):
        part = item.strip().lower()
        if not part:
            continue
        trees_text, sep, leaf_text = part.partition("x")
        try:
            if not sep:
                raise ValueError(part)
            config = (int(trees_text), int(leaf_text))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{item.strip()!r} is not TREESxMIN_ROWS_PER_LEAF, e.g. 60x3"
            ) from None
        if min(config) < 1:
            raise argparse.ArgumentTypeError(f"{item.strip()!r}: both numbers must be at least 1")
        if config in configs:
            raise argparse.ArgumentTypeError(f"{item.strip()!r} is listed twice")
        configs.append(config)
    if not configs:
        raise argparse.ArgumentTypeError("no configuration given")
    return tuple(configs)


def default_config() -> Config:
    """The project's default forest, from TrainingSettings' field defaults (not the env)."""
    from training.settings import TrainingSettings

    fields = TrainingSettings.model_fields
    return (int(fields["n_estimators"].default), int(fields["min_samples_leaf"].default))


# --------------------------------------------------------------------------- measuring


def _status_kib(field: str) -> int:
    """A kB field of /proc/self/status (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def probe(model: Path, rows: Path) -> Probe:
    """Create the service's session of one model in this (fresh) process and measure it.

    onnxruntime and bento.inference are imported first, so the baseline holds the
    interpreter and the libraries and the difference is the session alone.  The session
    is bento.inference.OnnxEngine's (one intra-op and one inter-op thread, basic graph
    optimisation, CPU provider), so the options cannot drift from the service's.
    """
    import numpy as np
    import onnxruntime  # noqa: F401 - loaded before the baseline on purpose

    from bento.inference import OnnxEngine

    baseline = _status_kib("VmRSS")
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    engine = OnnxEngine(model)
    cpu_s, wall_s = time.process_time() - cpu_start, time.perf_counter() - wall_start
    after, peak = _status_kib("VmRSS"), _status_kib("VmHWM")
    probabilities = engine.predict_proba(np.load(rows))
    return Probe(
        baseline_kib=baseline,
        after_kib=after,
        peak_kib=peak,
        cpu_s=cpu_s,
        wall_s=wall_s,
        digest=sha256_bytes(np.ascontiguousarray(probabilities).tobytes()),
    )


def run_probe(model: Path, rows: Path) -> Probe:
    """probe() in a fresh Python process."""
    command = [sys.executable, str(SCRIPT), "--probe", str(model), "--rows", str(rows)]
    out = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"probe of {model} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return Probe(**json.loads(out.stdout.strip().splitlines()[-1]))


def probe_order(configs: Sequence[Config], rounds: int) -> Iterator[tuple[Config, str]]:
    """(config, export) in measuring order: every round covers every export of every config.

    Odd rounds walk the configs backwards; which export of a config goes first alternates
    from round to round (and between neighbouring configs), so a slow patch of the machine
    does not favour one side.
    """
    for round_no in range(rounds):
        for config in round_order(configs, round_no):
            first_full = (round_no + list(configs).index(config)) % 2 == 0
            yield from ((config, name) for name in (EXPORTS if first_full else EXPORTS[::-1]))


def _log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def _settings(config: Config) -> TrainingSettings:
    from training.settings import TrainingSettings

    trees, min_leaf = config
    return TrainingSettings(n_estimators=trees, min_samples_leaf=min_leaf, random_state=SEED)


def _versions() -> dict[str, str]:
    packages = ("onnxruntime", "skl2onnx", "scikit-learn", "onnx")
    return {
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "platform": platform.platform(),
        "python": platform.python_version(),
        **{name: metadata.version(name) for name in packages},
    }


def _host_busy_s() -> float:
    """CPU seconds the whole host has been busy (all cores)."""
    return host_cpu_ticks()[0] / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    """CPU seconds of this process and of the children it has waited for."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _accuracy(frame: pd.DataFrame, config: Config) -> dict[str, dict[str, float]]:
    from training.evaluate import evaluate_all

    return {
        result.protocol: {t: m.accuracy for t, m in result.per_type.items()}
        for result in evaluate_all(frame, _settings(config))
    }


def measure(
    configs: Sequence[Config],
    *,
    rounds: int,
    accuracy: bool,
    skip_accuracy: Sequence[Config] = (),
) -> Run:
    """Train, export and measure every configuration (see the module docstring)."""
    import numpy as np

    from training.data import load_wine_data
    from training.train import model_matrix, to_onnx, train_forest

    started = datetime.now(UTC)
    clock = time.monotonic()
    load_before = os.getloadavg()
    frame = load_wine_data(_settings(configs[0])).frame
    nodes: dict[Config, int] = {}
    sizes: dict[tuple[Config, str], int] = {}
    probes: dict[tuple[Config, str], list[Probe]] = {}
    with tempfile.TemporaryDirectory(prefix="wineq-bench-forest-") as tmp:
        work = Path(tmp)
        rows = work / "rows.npy"
        np.save(rows, model_matrix(frame))
        for config in configs:
            _log(f"{config[0]} trees, leaves of {config[1]}+ rows: training and exporting")
            forest = train_forest(frame, _settings(config))
            nodes[config] = sum(int(tree.tree_.node_count) for tree in forest.estimators_)
            for name in EXPORTS:
                path = work / f"{config[0]}x{config[1]}-{name}.onnx"
                path.write_bytes(to_onnx(forest, compact=name == "compact"))
                sizes[config, name] = path.stat().st_size
                probes[config, name] = []
            del forest
        order = list(probe_order(configs, rounds))
        _log(f"load average {_load_text(os.getloadavg())}; {len(order)} session processes")
        phase = (time.monotonic(), _host_busy_s(), _own_cpu_s())
        for number, (config, name) in enumerate(order, start=1):
            item = run_probe(work / f"{config[0]}x{config[1]}-{name}.onnx", rows)
            probes[config, name].append(item)
            if number % 10 == 0 or number == len(order):
                _log(f"session {number}/{len(order)}")
        load_after = os.getloadavg()
        phase_s = time.monotonic() - phase[0]
        other_cpu_s = (_host_busy_s() - phase[1]) - (_own_cpu_s() - phase[2])
    accuracies: dict[Config, dict[str, dict[str, float]] | None] = {}
    for config in configs:
        if accuracy and config not in skip_accuracy:
            _log(f"{config[0]} trees, leaves of {config[1]}+ rows: cross-validating")
            accuracies[config] = _accuracy(frame, config)
        else:
            accuracies[config] = None
    shared = _settings(configs[0])
    return Run(
        started=f"{started:%Y-%m-%d %H:%M} UTC",
        wall_s=time.monotonic() - clock,
        rounds=rounds,
        rows=len(frame),
        environment=_versions(),
        settings={
            "max_features": str(shared.max_features),
            "max_depth": str(shared.max_depth),
            "class_weight": str(shared.class_weight),
            "cv_folds": str(shared.cv_folds),
        },
        load_before=load_before,
        load_after=load_after,
        other_load=max(other_cpu_s, 0.0) / phase_s,
        accuracy_skipped=tuple(c for c in configs if accuracy and c in skip_accuracy),
        results=tuple(
            ConfigResult(
                trees=config[0],
                min_leaf=config[1],
                nodes=nodes[config],
                accuracy=accuracies[config],
                full=Export(sizes[config, "full"], tuple(probes[config, "full"])),
                compact=Export(sizes[config, "compact"], tuple(probes[config, "compact"])),
            )
            for config in configs
        ),
        default=default_config(),
    )


# --------------------------------------------------------------------------- rendering


def describe(config: Config) -> str:
    """'60 trees with leaves of at least 3 rows' (leaves of 1 row: fully grown trees)."""
    trees, min_leaf = config
    if min_leaf == 1:
        return f"{trees} fully grown trees"
    return f"{trees} trees with leaves of at least {min_leaf} rows"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _accuracy_cell(result: ConfigResult, protocol: str) -> str:
    if result.accuracy is None:
        return NOT_RUN
    per_type = result.accuracy[protocol]
    return f"{_pct(per_type['red'])} / {_pct(per_type['white'])} %"


def _cells(result: ConfigResult) -> list[str]:
    return [
        str(result.trees),
        str(result.min_leaf),
        f"{result.nodes:,}",
        _accuracy_cell(result, "paper"),
        _accuracy_cell(result, "grouped"),
        *(f"{result.export(name).file_mib:.1f}" for name in EXPORTS),
        *(f"{result.export(name).session_mib:.0f}" for name in EXPORTS),
        *(f"{result.export(name).cpu_s:.2f}" for name in EXPORTS),
    ]


TABLE_HEADER: Final = (
    "| trees | min rows per leaf | nodes | (a) red / white | (b) leakage-free red / white "
    "| ONNX MiB full | ONNX MiB compact | session MiB full | session MiB compact "
    "| creation CPU-s full | creation CPU-s compact |"
)
TABLE_ALIGN: Final = "|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|"


def markdown_table(run: Run) -> list[str]:
    """The table, one row per configuration in run order; the project default in bold."""
    lines = [TABLE_HEADER, TABLE_ALIGN]
    for result in run.results:
        cells = _cells(result)
        if result.config == run.default:
            cells = [f"**{cell}**" for cell in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _find(run: Run, config: Config) -> ConfigResult | None:
    return next((r for r in run.results if r.config == config), None)


def _reference(run: Run) -> ConfigResult:
    """The largest forest measured (most nodes): what the others are compared with."""
    return max(run.results, key=lambda r: r.nodes)


def _span(values: Sequence[float]) -> str:
    low, high = round(100 * min(values)), round(100 * max(values))
    return f"{low} %" if low == high else f"{low}–{high} %"


def _change(before: float, after: float) -> str:
    return f"{100 * (after / before - 1):+.0f} %"


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def compact_notes(run: Run) -> list[str]:
    """Full against compact export: the default forest's deltas, the range over all forests."""
    focus = _find(run, run.default) or run.results[0]
    ref = _reference(run)
    full, compact = focus.full, focus.compact
    ratios = focus.paired_cpu_ratios()
    which = "the default forest" if focus.config == run.default else describe(focus.config)
    notes = [
        f"- Full against compact, {which}: the file goes from {full.file_mib:.1f} to "
        f"{compact.file_mib:.1f} MiB ({_change(full.file_mib, compact.file_mib)}), the "
        f"session from {full.session_mib:.0f} to {compact.session_mib:.0f} MiB "
        f"({compact.session_mib - full.session_mib:+.0f} MiB, "
        f"{_change(full.session_mib, compact.session_mib)}) and its creation from "
        f"{full.cpu_s:.2f} to {compact.cpu_s:.2f} CPU-s "
        f"({_change(full.cpu_s, compact.cpu_s)}; compact / full within each round: median "
        f"{statistics.median(ratios):.2f}, range {min(ratios):.2f}–{max(ratios):.2f}). "
        f"Creation samples, full: {', '.join(f'{p.cpu_s:.2f}' for p in full.probes)}; "
        f"compact: {', '.join(f'{p.cpu_s:.2f}' for p in compact.probes)} CPU-s.",
        "- Over all forests the compact file is "
        f"{_span([r.compact.file_mib / r.full.file_mib for r in run.results])} of the full "
        "one, the compact session "
        f"{_span([r.compact.session_mib / r.full.session_mib for r in run.results])} and its "
        "creation CPU "
        f"{_span([statistics.median(r.paired_cpu_ratios()) for r in run.results])} "
        "(median of the per-round ratios).",
        "- Building the session takes more memory than the session keeps: the measuring "
        f"process peaked {full.peak_mib:.0f} (full) / {compact.peak_mib:.0f} (compact) MiB "
        f"above its baseline for {which}"
        + (
            f", {ref.full.peak_mib:.0f} / {ref.compact.peak_mib:.0f} MiB for "
            f"{describe(ref.config)}."
            if ref is not focus
            else "."
        ),
    ]
    differing = [describe(r.config) for r in run.results if not r.outputs_identical()]
    if differing:
        notes.append(
            f"- Outputs **differ** between the full and the compact export of {_join(differing)}"
            f" (probabilities for all {run.rows:,} rows, compared by SHA-256)."
        )
    else:
        notes.append(
            f"- Outputs: every session process scored all {run.rows:,} rows, and the "
            "probabilities' SHA-256 was the same for the full and the compact export of each "
            "forest."
        )
    return notes


def reasoning(run: Run) -> str:
    """Why the default forest: built from the measured numbers of this run."""
    from scripts.container_image import FARGATE_MEMORY_MIB
    from training.evaluate import PAPER_REFERENCE

    paper = {t: PAPER_REFERENCE[t]["accuracy"] for t in WINE_TYPES}
    paper_text = f"{_pct(paper['red'])} % red, {_pct(paper['white'])} % white"
    ref = _reference(run)
    default = _find(run, run.default)
    measured = [r for r in run.results if r.accuracy is not None]
    sentences: list[str] = []

    def acc(result: ConfigResult, protocol: str, wine_type: str) -> float:
        assert result.accuracy is not None
        return result.accuracy[protocol][wine_type]

    if measured:
        short = [(r, [t for t in WINE_TYPES if acc(r, "paper", t) <= paper[t]]) for r in measured]
        short = [(r, types) for r, types in short if types]
        if short:
            named = [
                describe(r.config)
                + " ("
                + ", ".join(f"{t} {_pct(acc(r, 'paper', t))} %" for t in types)
                + ")"
                for r, types in short
            ]
            pronoun = "that forest" if len(short) == 1 else "those forests"
            sentences.append(
                f"The paper's figures ({paper_text}) were measured under protocol (a); "
                f"{_join(named)} {'does' if len(short) == 1 else 'do'} not beat them "
                f"there, which rules {pronoun} out."
            )
        else:
            sentences.append(
                f"Under protocol (a), where the paper's figures ({paper_text}) come from, "
                "every forest measured beats the paper on both wine types."
            )
    if ref.accuracy is not None and len(measured) > 1:
        gaps = [
            (abs(acc(r, "grouped", t) - acc(ref, "grouped", t)), r, t)
            for r in measured
            for t in WINE_TYPES
        ]
        gap, worst, wine_type = max(gaps, key=lambda g: g[0])
        sentences.append(
            "Under the leakage-free protocol (b), the estimate to expect on wines the model "
            f"has not seen, no forest here is more than {100 * gap:.1f} points from "
            f"{describe(ref.config)} on either wine type (the widest gap: "
            f"{describe(worst.config)}, {wine_type})"
            + (
                ", so the larger forests' lead under (a) does not carry over to unseen wines."
                if gap <= 0.01
                else "."
            )
        )
    if default is not None and default.accuracy is not None:
        above = [r for r in measured if all(acc(r, "paper", t) > paper[t] for t in WINE_TYPES)]
        margins = (
            f"{100 * (acc(default, 'paper', 'red') - paper['red']):.1f} points red and "
            f"{100 * (acc(default, 'paper', 'white') - paper['white']):.1f} white"
        )
        smallest = min(above, key=lambda r: r.nodes) if above else None
        if smallest is default:
            sentences.append(
                f"The default, {describe(default.config)}, is the forest with the fewest "
                f"nodes that stays above the paper under (a): by {margins}."
            )
        elif default in above and smallest is not None:
            sentences.append(
                f"The default, {describe(default.config)}, stays above the paper under (a) "
                f"by {margins}; {describe(smallest.config)} does too with fewer nodes "
                f"({smallest.nodes:,} against {default.nodes:,})."
            )
        else:
            sentences.append(
                f"The default, {describe(default.config)}, does not stay above the paper "
                f"under (a) in this run ({margins})."
            )
    if default is not None and default is not ref:
        sentences.append(
            f"Shipped compact, the default's session holds {default.compact.session_mib:.0f} "
            f"MiB and takes {default.compact.cpu_s:.2f} CPU-s to create, against "
            f"{ref.compact.session_mib:.0f} MiB and {ref.compact.cpu_s:.2f} CPU-s for "
            f"{describe(ref.config)}: "
            f"{ref.compact.session_mib / default.compact.session_mib:.1f} times less memory "
            f"and {ref.compact.cpu_s / default.compact.cpu_s:.1f} times less start-up CPU."
        )
    base = ref.compact.baseline_mib
    full = (base + ref.full.session_mib, base + ref.full.peak_mib)
    compact = (base + ref.compact.session_mib, base + ref.compact.peak_mib)
    sentences.append(
        f"For {describe(ref.config)}, a Python process that has imported onnxruntime "
        f"({base:.0f} MiB) holds {full[0]:.0f} MiB with the session of the full export "
        f"({full[1]:.0f} MiB at the peak of building it) and {compact[0]:.0f} MiB with the "
        f"compact one ({compact[1]:.0f} MiB at the peak)"
    )

    def left(peak: float, export: str) -> str:
        room = FARGATE_MEMORY_MIB - peak
        return (
            f"{room:.0f} MiB with the {export} export"
            if room >= 0
            else (f"nothing with the {export} export ({-room:.0f} MiB over)")
        )

    verdict = (
        f"of the task's {FARGATE_MEMORY_MIB} MiB that leaves {left(max(compact), 'compact')} and "
        f"{left(max(full), 'full')} for BentoML, the service and its requests (what those "
        'take is in "Container (Fargate limits)").'
    )
    sentences[-1] += ": " + verdict
    return " ".join(sentences)


def _load_text(load: Sequence[float]) -> str:
    return " / ".join(f"{x:.1f}" for x in load)


def render_section(run: Run) -> str:
    """The Markdown section, heading included, ending in a newline."""
    from scripts.container_image import FARGATE_MEMORY_MIB

    env = run.environment
    s = run.settings
    accuracy_note = ""
    if all(r.accuracy is None for r in run.results) and not run.accuracy_skipped:
        accuracy_note = " Accuracy was not measured in this run (`--no-accuracy`)."
    elif run.accuracy_skipped:
        skipped = _join([describe(c) for c in run.accuracy_skipped])
        accuracy_note = (
            f" Accuracy of {skipped} was left out of this run (`--skip-accuracy`) to keep it short."
        )
    lines = [
        SECTION_TITLE,
        "",
        f"Written by `make bench-forest` (`{COMMAND}`); rerun it to refresh this "
        "section (`--configs 60x3,100x1` measures a subset, `--no-accuracy` skips the "
        "slow cross-validation). How many trees, and how large, the served forest may be: "
        "ONNX Runtime holds every node of the forest in memory, so on a "
        f"{FARGATE_MEMORY_MIB} MiB task the node count decides the memory budget more than "
        "anything else in the process, and building the session is start-up CPU on a "
        "quarter of a core.",
        "",
        f"Each forest (seed {SEED}, `max_features` {s['max_features']}, `max_depth` "
        f"{s['max_depth']}) is trained on all {run.rows:,} rows; nodes are summed over its "
        "trees. Accuracy is out-of-fold, per wine type, under the two protocols of "
        f"`docs/model.md` ({s['cv_folds']} folds, `training.evaluate.evaluate_all`): (a) "
        "the paper's, (b) leakage-free." + accuracy_note + " The forest is exported twice: "
        "as skl2onnx writes it (full, `to_onnx(forest, compact=False)`) and as the service "
        "ships it (compact, `to_onnx(forest)`: without the zero-weight class entries, "
        "`nodes_hitrates` and the all-zero missing-value tracks). For each export a fresh "
        "Python process that has already imported onnxruntime creates the session the way "
        "the service does (`bento.inference.OnnxEngine`: one intra-op and one inter-op "
        "thread, basic graph optimisation, CPU provider). Session MiB is its resident "
        "memory after minus before; creation CPU-s is `time.process_time` around the "
        f"constructor. Both are medians of {run.rounds} processes per export; every round "
        "measures every export of every forest, alternating which of full and compact goes "
        "first, so that drift in the shared machine's speed hits "
        "both alike. Compare creation CPU within this table, not across runs. MiB = 2^20 "
        "bytes.",
        "",
        f"**Conditions.** {run.started}, {run.wall_s / 60:.1f} min for the whole run; "
        f"{env['cpu']}, {env['cores']} cores, {env['platform']}; Python {env['python']}, "
        f"onnxruntime {env['onnxruntime']}, skl2onnx {env['skl2onnx']}, scikit-learn "
        f"{env['scikit-learn']}, onnx {env['onnx']}. The machine is shared with other "
        "engineers' builds and tests: during the session measurements they kept "
        f"{run.other_load:.2f} of its {env['cores']} cores busy (host CPU time minus this "
        "run's own); host load average (1 / 5 / 15 min) "
        f"{_load_text(run.load_before)} at the start of the run and "
        f"{_load_text(run.load_after)} at the end of the session measurements (this run's "
        "own training comes in between).",
        "",
        *markdown_table(run),
        "",
        *compact_notes(run),
        "",
        reasoning(run),
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the document


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--configs",
        type=parse_configs,
        default=DEFAULT_CONFIGS,
        help="TREESxMIN_ROWS_PER_LEAF, comma-separated (default: "
        + ",".join(f"{t}x{m}" for t, m in DEFAULT_CONFIGS)
        + ")",
    )
    parser.add_argument(
        "--rounds", type=int, default=DEFAULT_ROUNDS, help="session processes per export"
    )
    parser.add_argument(
        "--no-accuracy", action="store_true", help="skip the cross-validation (the slow part)"
    )
    parser.add_argument(
        "--skip-accuracy",
        type=parse_configs,
        default=(),
        metavar="CONFIGS",
        help="skip the cross-validation of these configurations only, e.g. 300x1",
    )
    parser.add_argument("--update-doc", type=Path, help="Markdown file whose section to rewrite")
    parser.add_argument(
        "--render", type=Path, metavar="JSON", help="render a saved run instead of measuring"
    )
    parser.add_argument("--probe", type=Path, help=argparse.SUPPRESS)  # child process mode
    parser.add_argument("--rows", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if (args.probe is None) != (args.rows is None):
        parser.error("--probe and --rows go together")
    return args


def _save(run: Run) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.strptime(run.started, "%Y-%m-%d %H:%M UTC").strftime("%Y%m%dT%H%MZ")
    path = RESULTS_DIR / f"forest-{stamp}.json"
    path.write_text(json.dumps(asdict(run), indent=2) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Measure (or re-render a saved run), print the section, optionally update the doc."""
    args = parse_args(argv)
    if args.probe is not None:
        print(json.dumps(asdict(probe(args.probe, args.rows))))
        return 0
    if args.render is not None:
        run = run_from_dict(json.loads(args.render.read_text()))
    else:
        run = measure(
            args.configs,
            rounds=args.rounds,
            accuracy=not args.no_accuracy,
            skip_accuracy=args.skip_accuracy,
        )
        _log(f"raw results: {_save(run)}")
    publish(render_section(run), SECTION_TITLE, args.update_doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

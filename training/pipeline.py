"""The training steps end to end, as plain functions for the CLI, the DAGs and the tests."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.artifacts import HEADLINE_METRICS, MODEL_NAME
from training.data import WineData, load_wine_data
from training.settings import TrainingSettings
from training.validate import ValidationReport, validate_frame

if TYPE_CHECKING:
    from training.evaluate import ProtocolResult
    from training.gate import Decision

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ingested:
    """Verified and validated data."""

    data: WineData
    report: ValidationReport


def ingest(settings: TrainingSettings) -> Ingested:
    """Download or read, verify and validate both CSVs (raises on any problem)."""
    data = load_wine_data(settings)
    report = validate_frame(data.frame)
    return Ingested(data=data, report=report)


def train_and_save(
    settings: TrainingSettings,
    ingested: Ingested | None = None,
    *,
    full_evaluation: bool = False,
) -> str:
    """Train on all rows, estimate leakage-free metrics, write a store entry; return its tag.

    The quick path estimates metrics on one grouped hold-out fold; ``full_evaluation``
    cross-validates both protocols instead (slower) and stores all of them.
    """
    from training.evaluate import PROTOCOLS, evaluate_protocol, holdout_metrics
    from training.store import save_model
    from training.train import hyperparameters, to_onnx, train_forest

    ingested = ingested or ingest(settings)
    frame = ingested.data.frame
    metrics: dict[str, Any]
    folds = settings.cv_folds
    if full_evaluation:
        metrics_protocol = (
            f"cv_paper and cv_grouped: {folds}-fold cross-validation; leakage_free = cv_grouped"
        )
        metrics = {
            f"cv_{protocol}": {
                wine_type: m.as_dict()
                for wine_type, m in evaluate_protocol(frame, protocol, settings).per_type.items()
            }
            for protocol in PROTOCOLS
        }
        # A copy, not a second reference: YAML would write an anchor and an alias.
        metrics[HEADLINE_METRICS] = {t: dict(m) for t, m in metrics["cv_grouped"].items()}
    else:
        metrics_protocol = f"leakage_free: one grouped hold-out fold (1/{folds} of the rows)"
        logger.info("estimating leakage-free metrics on one grouped hold-out fold")
        metrics = {
            HEADLINE_METRICS: {
                wine_type: m.as_dict() for wine_type, m in holdout_metrics(frame, settings).items()
            }
        }
    forest = train_forest(frame, settings)
    logger.info("exporting to ONNX")
    onnx_model = to_onnx(forest)
    return save_model(
        forest=forest,
        onnx_model=onnx_model,
        frame=frame,
        metrics=metrics,
        data_sha256=ingested.data.data_sha256,
        hyperparameters=hyperparameters(settings),
        extra_metadata={"metrics_protocol": metrics_protocol},
    )


def ensure_model(settings: TrainingSettings) -> tuple[str, bool]:
    """The newest entry's tag, training one first if the store has none; (tag, trained)."""
    from training.store import latest_model_tag

    existing = latest_model_tag(MODEL_NAME)
    if existing is not None:
        return existing, False
    return train_and_save(settings), True


def bundled_model_decision(settings: TrainingSettings) -> tuple[str | None, Decision | None]:
    """The store's latest entry (what `bentoml build` bundles) and the gate decision that
    promoted it, looked up in the mirror when ``WINEQ_TRAIN_S3_BUCKET`` names one."""
    from training.retrain import find_decision
    from training.store import latest_model_tag

    tag = latest_model_tag(MODEL_NAME)
    if tag is None or not settings.s3_bucket:
        return tag, None
    return tag, find_decision(settings.s3_bucket, settings.s3_prefix, tag.rpartition(":")[2])


def write_model_card(settings: TrainingSettings, output: Path) -> list[ProtocolResult]:
    """Evaluate both protocols, write the Markdown report to output and its PNG figures
    beside it, with the gate decision of the bundled model; return the results."""
    from training.evaluate import evaluate_all, render_markdown
    from training.figures import write_figures
    from training.gate import render_markdown as render_gate

    ingested = ingest(settings)
    results = evaluate_all(ingested.data.frame, settings)
    output.parent.mkdir(parents=True, exist_ok=True)
    figures = write_figures(results, output.parent)
    bundled_tag, decision = bundled_model_decision(settings)
    markdown = render_markdown(
        results,
        settings=settings,
        data_sha256=ingested.data.data_sha256,
        file_sha256=ingested.data.file_sha256,
        n_duplicates=ingested.report.n_duplicates,
        figures=figures,
        gate=render_gate(decision, bundled_tag),
    )
    output.write_text(markdown, encoding="utf-8")
    return results

"""The promotion gate's rule, the DAG settings' resolution and the Airflow lock."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.cli import REPO_ROOT
from training.evaluate import ConfusionMatrix, ProtocolResult, TypeMetrics
from training.figures import CONFUSION_PNG, PER_CLASS_PNG, write_figures
from training.gate import Comparison, GateError, decide, identical_comparison, recipe_of
from training.gate import render_markdown as render_gate_section
from training.retrain import ConfigError, RetrainConfig

CHAMPION = {"red": 0.60, "white": 0.62}


def _comparison(challenger: dict[str, float], champion: dict[str, float] | None) -> Comparison:
    return Comparison(
        folds=3, data_sha256="d" * 64, challenger=challenger, champion=champion,
        rows={"red": 1599, "white": 4898},
    )  # fmt: skip


def _decide(comparison: Comparison | None, threshold: float = 0.01, force: bool = False) -> Any:
    return decide(
        data_date="2026-04-01",
        challenger_tag="wine_quality:challenger",
        champion_version=None if comparison is None else "champion",
        comparison=comparison,
        threshold=threshold,
        force=force,
        decided_at="2026-04-01T00:00:00+00:00",
    )


@pytest.mark.parametrize(
    ("challenger", "outcome"),
    [
        ({"red": 0.65, "white": 0.66}, "promoted"),  # better on both
        ({"red": 0.595, "white": 0.62}, "promoted"),  # worse, within the threshold
        ({"red": 0.585, "white": 0.70}, "kept_champion"),  # one type too much worse
        ({"red": 0.60, "white": 0.605}, "kept_champion"),
    ],
)
def test_the_gate_keeps_the_champion_when_a_wine_type_drops_beyond_the_threshold(
    challenger: dict[str, float], outcome: str
) -> None:
    decision = _decide(_comparison(challenger, CHAMPION))
    assert decision.outcome == outcome
    assert decision.forced is False


def test_the_reason_names_the_wine_type_that_got_worse() -> None:
    decision = _decide(_comparison({"red": 0.50, "white": 0.62}, CHAMPION))
    assert "red 0.500 vs 0.600" in decision.reason
    assert "white" not in decision.reason


def test_without_a_champion_the_first_challenger_is_promoted() -> None:
    assert _decide(None).outcome == "promoted"
    assert _decide(_comparison({"red": 0.1, "white": 0.1}, None)).outcome == "promoted"


def test_a_challenger_repeating_the_champion_is_not_promoted() -> None:
    decision = _decide(identical_comparison("d" * 64, {"red": 1599, "white": 4898}))
    assert decision.outcome == "kept_champion"
    assert "repeats the champion" in decision.reason


def test_a_forced_promotion_promotes_and_says_what_the_gate_alone_would_do(
    caplog: pytest.LogCaptureFixture,
) -> None:
    decision = _decide(_comparison({"red": 0.1, "white": 0.1}, CHAMPION), force=True)
    assert decision.outcome == "promoted"
    assert decision.forced is True
    assert decision.reason.startswith("FORCED promotion")
    assert "would keep the champion" in decision.reason
    assert any(r.levelname == "WARNING" and "FORCED" in r.getMessage() for r in caplog.records)


def test_a_negative_threshold_is_refused() -> None:
    with pytest.raises(GateError, match="threshold"):
        _decide(_comparison(CHAMPION, CHAMPION), threshold=-0.01)


def test_a_recipe_without_its_hyperparameters_cannot_be_compared() -> None:
    with pytest.raises(GateError, match="max_depth"):
        recipe_of({"n_estimators": 10})
    assert (
        recipe_of(
            {
                "n_estimators": 10,
                "max_depth": "None",
                "min_samples_leaf": 3,
                "max_features": "sqrt",
                "class_weight": "None",
                "random_state": 42,
            }
        )["max_depth"]
        is None
    )


def test_settings_come_from_params_then_variables_then_defaults() -> None:
    variables = {"wineq_s3_bucket": "from-variable", "wineq_threshold": "0.02"}
    config = RetrainConfig.resolve({"s3_prefix": "p", "threshold": None}, variables.get)
    assert config.s3_bucket == "from-variable"
    assert config.s3_prefix == "p"
    assert config.threshold == 0.02
    assert config.data_prefix == "data"


def test_a_forced_promotion_is_never_read_from_a_variable() -> None:
    variables = {"wineq_s3_bucket": "b", "wineq_force_promotion": "true"}
    assert RetrainConfig.resolve({}, variables.get).force_promotion is False


def test_a_missing_bucket_names_the_param_and_the_variable() -> None:
    with pytest.raises(ConfigError, match="wineq_s3_bucket"):
        RetrainConfig.resolve({}, lambda name: None)
    config = RetrainConfig.resolve({"s3_bucket": "b"}, lambda name: None)
    with pytest.raises(ConfigError, match="wineq_ecs_cluster"):
        config.required("ecs_cluster", "ecs_service")


def _pins(path: str) -> dict[str, str]:
    text = (REPO_ROOT / path).read_text()
    return dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==(\S+)", text, re.MULTILINE))


def test_the_airflow_lock_adds_to_the_dev_lock_without_changing_a_pin() -> None:
    dev, airflow = _pins("requirements/dev.lock"), _pins("requirements/airflow.lock")
    assert "apache-airflow" in airflow
    changed = {name: (dev[name], airflow[name]) for name in dev if airflow.get(name) != dev[name]}
    assert changed == {}, "re-lock requirements/airflow.lock against dev.lock (mk/airflow.mk)"
    text = (REPO_ROOT / "requirements/airflow.lock").read_text()
    assert "://" not in text, "a lock file never records a registry's address"
    assert "--hash=sha256:" in text


def test_the_model_card_shows_the_comparison_that_promoted_the_bundled_model() -> None:
    comparison = _comparison({"red": 0.65, "white": 0.61}, CHAMPION)
    lines = render_gate_section(_decide(comparison), "wine_quality:challenger")
    text = "\n".join(lines)
    assert lines[0] == "## Promotion gate"
    assert "`wine_quality:challenger` was promoted" in text
    assert "| red | 1599 | 65.0 % | 60.0 % | +5.0 points |" in text
    assert "| white | 4898 | 61.0 % | 62.0 % | -1.0 points |" in text
    missing = "\n".join(render_gate_section(None, "wine_quality:v1"))
    assert "No gate decision is recorded for the bundled model (`wine_quality:v1`)" in missing


def test_the_model_card_pictures_are_written_beside_it(tmp_path: Path) -> None:
    confusion = {
        t: ConfusionMatrix(grades=[5, 6, 7], counts=[[8, 2, 0], [3, 6, 1], [0, 2, 3]])
        for t in ("red", "white")
    }
    metrics = TypeMetrics(n=25, accuracy=0.68, macro_f1=0.6, mad=0.3, majority_baseline=0.4)
    results = [
        ProtocolResult(protocol, 3, {"red": metrics, "white": metrics}, 0, confusion)
        for protocol in ("paper", "grouped")
    ]
    written = write_figures(results, tmp_path)
    assert [name for name, _ in written] == [CONFUSION_PNG, PER_CLASS_PNG]
    for name, _ in written:
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert confusion["red"].per_class_accuracy() == {5: 0.8, 6: 0.6, 7: 0.6}

"""Unit tests of the serving contract: schemas, error mapping, settings."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from bento.errors import HTTP_STATUS_CODES, ApiError, field_errors
from bento.guard import json_depth
from bento.schemas import BatchPredictRequest, PredictRequest, WineFeatures
from bento.settings import ServiceSettings
from training.envvars import InvalidSettingError, UnknownSettingError
from training.features import EXAMPLE_FEATURES, FEATURE_NAMES, FEATURES, WINE_TYPE_FIELD


def test_request_schema_is_generated_from_the_feature_contract() -> None:
    assert list(WineFeatures.model_fields) == [*FEATURE_NAMES, WINE_TYPE_FIELD]
    schema = WineFeatures.model_json_schema()
    for feature in FEATURES:
        field = schema["properties"][feature.name]
        assert field["minimum"] == feature.hard_min
        assert field["maximum"] == feature.hard_max
        assert feature.unit in field["description"]


def test_wine_type_defaults_to_red() -> None:
    features = {k: v for k, v in EXAMPLE_FEATURES.items() if k != WINE_TYPE_FIELD}
    request = PredictRequest.model_validate({"features": features})
    assert request.features.model_dump()["wine_type"] == "red"


@pytest.mark.parametrize("value", ["7.4", True, None, float("nan"), float("inf"), -0.5])
def test_fixed_acidity_must_be_a_finite_non_negative_number(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        PredictRequest.model_validate({"features": {**EXAMPLE_FEATURES, "fixed_acidity": value}})
    assert [f for f, _ in field_errors(info.value.errors())] == ["features.fixed_acidity"]


def test_integers_are_accepted_as_numbers() -> None:
    request = PredictRequest.model_validate({"features": {**EXAMPLE_FEATURES, "alcohol": 10}})
    assert request.features.model_dump()["alcohol"] == 10.0


def test_free_so2_above_total_names_the_free_field() -> None:
    bad = {**EXAMPLE_FEATURES, "free_sulfur_dioxide": 40.0, "total_sulfur_dioxide": 30.0}
    with pytest.raises(ValidationError) as info:
        BatchPredictRequest.model_validate({"features_list": [EXAMPLE_FEATURES, bad]})
    assert field_errors(info.value.errors()) == [
        ("features_list.1.free_sulfur_dioxide", "must not exceed total_sulfur_dioxide")
    ]


def test_unknown_field_reason_points_at_spelling() -> None:
    with pytest.raises(ValidationError) as info:
        PredictRequest.model_validate({"features": EXAMPLE_FEATURES, "requestid": "x"})
    (field, reason), *_ = field_errors(info.value.errors())
    assert field == "requestid"
    assert "unknown field" in reason


def test_api_error_body_is_json_with_per_field_detail() -> None:
    error = ApiError("validation_error", "1 invalid field(s)", [("features.ph", "too high")])
    assert error.status == 422
    assert json.loads(error.body()) == {
        "error": "validation_error",
        "message": "1 invalid field(s)",
        "detail": [{"field": "features.ph", "reason": "too high"}],
    }


def test_every_error_code_maps_to_a_client_or_server_status() -> None:
    assert all(400 <= status < 600 for status in HTTP_STATUS_CODES.values())
    assert HTTP_STATUS_CODES["payload_too_large"] == HTTP_STATUS_CODES["batch_too_large"] == 413


@pytest.mark.parametrize(
    ("value", "depth"),
    [(1, 0), ({}, 1), ({"a": [1, 2]}, 2), ([[[[]]]], 4), ({"a": {"b": {"c": [{}]}}}, 5)],
)
def test_json_depth(value: object, depth: int) -> None:
    assert json_depth(value) == depth


def test_a_misspelt_serving_variable_stops_start_up_naming_the_closest_setting() -> None:
    environ = {"WINEQ_MAX_BACH_ROWS": "64", "WINEQ_ENGINE": "sklearn"}
    with pytest.raises(UnknownSettingError) as info:
        ServiceSettings.from_env(environ)
    message = str(info.value)
    assert "WINEQ_MAX_BACH_ROWS" in message
    assert "did you mean WINEQ_MAX_BATCH_ROWS?" in message


def test_serving_settings_come_from_the_given_environment_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The process's own environment must not leak into settings read from a given one.
    monkeypatch.setenv("WINEQ_MAX_CONCURRENCY", "3")
    environ = {
        "WINEQ_MAX_BATCH_ROWS": "17",
        "WINEQ_ENGINE": "sklearn",
        # Training's own prefix nests in serving's: not an unknown serving setting.
        "WINEQ_TRAIN_N_ESTIMATORS": "40",
        "PATH": "/usr/bin",
    }
    settings = ServiceSettings.from_env(environ)
    assert settings.max_batch_rows == 17
    assert settings.engine == "sklearn"
    assert settings.max_concurrency == ServiceSettings.model_fields["max_concurrency"].default


def test_an_engine_the_service_does_not_have_stops_start_up() -> None:
    with pytest.raises(InvalidSettingError, match=r"WINEQ_ENGINE='tensorflow'"):
        ServiceSettings.from_env({"WINEQ_ENGINE": "tensorflow"})


@pytest.mark.parametrize(
    ("variable", "value"),
    [("WINEQ_METRICS_INTERVAL_S", "-5"), ("WINEQ_METRICS_NAMESPACE", "")],
)
def test_a_bad_metrics_setting_stops_start_up_naming_the_variable(
    variable: str, value: str
) -> None:
    with pytest.raises(InvalidSettingError, match=rf"^invalid setting: {variable}="):
        ServiceSettings.from_env({variable: value})

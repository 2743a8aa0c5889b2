"""The steps of the ingestion and retrain-and-rebuild DAGs, as plain functions.

Each step takes and returns small JSON (S3 URIs, tags, digests, decisions), never data
frames or local paths, and is idempotent for its data date: a snapshot is written once,
the gate's decision for a date is recorded once in S3 (a re-run reuses it instead of
training and deciding again), a mirrored version is immutable, a clean image tag is
pushed once and a service already running the image gets no new revision.

The challenger's model store entry lives on the worker that trained it until the publish
step pushes it: run the retrain DAG's tasks on one host (a LocalExecutor, as
``make airflow-local`` runs them).  Airflow is not imported here; the DAGs pass their params
and a Variable lookup to :meth:`RetrainConfig.resolve`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from training.settings import TrainingSettings

if TYPE_CHECKING:
    from training.gate import Decision

logger = logging.getLogger(__name__)

VARIABLE_PREFIX: Final = "wineq_"
# Never read from a Variable: a forced promotion is asked for explicitly, per run.
RUN_ONLY_FIELDS: Final = frozenset({"force_promotion"})


class ConfigError(ValueError):
    """A required setting is neither a DAG param nor an Airflow Variable."""


class RetrainConfig(BaseModel):
    """Where the DAGs read and write; each field is a DAG param or Variable ``wineq_<name>``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    s3_bucket: str = Field(description="Bucket of the data snapshots and the model mirror.")
    s3_prefix: str = Field("models", description="Key prefix of the model mirror.")
    data_prefix: str = Field("data", description="Key prefix of the data snapshots.")
    threshold: float = Field(
        0.01, ge=0, description="Largest accuracy drop per wine type the gate accepts."
    )
    force_promotion: bool = Field(False, description="Promote whatever the gate says (logged).")
    registry: str | None = Field(None, description="Image registry host, e.g. ECR's.")
    repository: str = Field("wine-quality", description="Image repository in the registry.")
    ecs_cluster: str | None = Field(None, description="ECS cluster of the service.")
    ecs_service: str | None = Field(None, description="ECS service to roll out to.")
    ecs_container: str | None = Field(
        None, description="Container to update (default: the only one)."
    )
    aws_region: str | None = Field(
        None, description="Region of the ECS service (default: the standard chain's)."
    )
    rollout_timeout_minutes: float = Field(
        20, gt=0, description="How long the rollout waits for a stable service."
    )

    @classmethod
    def resolve(
        cls, params: Mapping[str, Any], variable: Callable[[str], str | None]
    ) -> RetrainConfig:
        """Each field from its DAG param, else the Variable ``wineq_<name>``, else its default."""
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            value = params.get(name)
            if value in (None, "") and name not in RUN_ONLY_FIELDS:
                value = variable(f"{VARIABLE_PREFIX}{name}")
            if value not in (None, ""):
                values[name] = value
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{error['loc'][0]}: {error['msg']} (DAG param or Variable "
                f"{VARIABLE_PREFIX}{error['loc'][0]})"
                for error in exc.errors()
            )
            raise ConfigError(f"invalid retrain configuration: {problems}") from None

    def required(self, *names: str) -> list[str]:
        """The values of optional fields a step needs; ConfigError naming those unset."""
        missing = [name for name in names if getattr(self, name) in (None, "")]
        if missing:
            raise ConfigError(
                "not configured: "
                + ", ".join(f"{n} (DAG param or Variable {VARIABLE_PREFIX}{n})" for n in missing)
            )
        return [str(getattr(self, name)) for name in names]


# JSON-schema types of the DAG params; None means "the Variable, else the default".
_PARAM_TYPES: Final[dict[type, str]] = {str: "string", float: "number", bool: "boolean"}
SNAPSHOT_ASSET: Final = "wine_quality_validated_snapshot"


def dag_params(names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Keyword arguments of Airflow ``Param`` for the named config fields (one definition)."""
    specs: dict[str, dict[str, Any]] = {}
    for name in names:
        field = RetrainConfig.model_fields[name]
        kind = next(k for k in _PARAM_TYPES if k in (field.annotation, *get_args(field.annotation)))
        if name in RUN_ONLY_FIELDS:
            specs[name] = {"default": field.default, "type": _PARAM_TYPES[kind]}
            description = field.description or ""
        else:
            specs[name] = {"default": None, "type": ["null", _PARAM_TYPES[kind]]}
            if field.is_required():
                fallback = "required"
            else:
                fallback = "unset" if field.default is None else f"{field.default!r}"
            description = (
                f"{field.description} Empty: Variable {VARIABLE_PREFIX}{name}, else {fallback}."
            )
        specs[name]["description"] = description
    return specs


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# --- ingestion ----------------------------------------------------------------------------


def validate_input() -> dict[str, Any]:
    """Fetch (or read) and validate the input; the full report is logged when it fails."""
    from training.snapshots import validated_input
    from training.validate import DataValidationError

    try:
        ingested = validated_input(TrainingSettings.from_env())
    except DataValidationError as exc:
        logger.error("validation failed, nothing is uploaded:\n%s", exc.report.render())
        raise
    logger.info("validation report:\n%s", ingested.report.render())
    return {
        "data_sha256": ingested.data.data_sha256,
        "file_sha256": ingested.data.file_sha256,
        "rows": ingested.data.rows_by_type(),
        "n_duplicates": ingested.report.n_duplicates,
    }


def upload_input(
    config: RetrainConfig, data_date: str, validated: Mapping[str, Any]
) -> dict[str, Any]:
    """Upload the data the validate step passed as the date's snapshot (same sha256 only)."""
    from training.mirror import IntegrityError
    from training.snapshots import upload_snapshot, validated_input

    ingested = validated_input(TrainingSettings.from_env())
    if ingested.data.data_sha256 != validated["data_sha256"]:
        raise IntegrityError(
            f"the input changed since it was validated (data sha256 {validated['data_sha256']}, "
            f"now {ingested.data.data_sha256}); run the DAG again"
        )
    result = upload_snapshot(ingested, config.s3_bucket, config.data_prefix, data_date)
    return result.summary()


# --- retrain and rebuild ------------------------------------------------------------------


def _mirror_layout(config: RetrainConfig) -> Any:
    from training.mirror import MirrorLayout

    return MirrorLayout(config.s3_bucket, config.s3_prefix)


def decision_key(config: RetrainConfig, data_date: str) -> str:
    """Key of the gate's recorded decision for a data date, beside the mirror's versions."""
    from training.snapshots import check_date

    return f"{_mirror_layout(config).model_root}decisions/ds={check_date(data_date)}.json"


def recorded_decision(config: RetrainConfig, data_date: str) -> Decision | None:
    """The gate's decision already recorded for the date, or None."""
    from training.gate import Decision
    from training.mirror import make_s3_client
    from training.snapshots import read_object

    body = read_object(make_s3_client(), config.s3_bucket, decision_key(config, data_date))
    return None if body is None else Decision.model_validate_json(body)


def find_decision(bucket: str, prefix: str, version: str) -> Decision | None:
    """The recorded gate decision that promoted ``version``, or None."""
    from training.gate import Decision
    from training.mirror import MirrorLayout, make_s3_client
    from training.snapshots import read_object

    client = make_s3_client()
    root = f"{MirrorLayout(bucket, prefix).model_root}decisions/"
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=root)
    for key in sorted((o["Key"] for page in pages for o in page.get("Contents", [])), reverse=True):
        body = read_object(client, bucket, key)
        decision = None if body is None else Decision.model_validate_json(body)
        if decision is not None and decision.promoted and decision.challenger_version == version:
            return decision
    return None


def locate_snapshot(config: RetrainConfig, data_date: str) -> str:
    """The URI of the date's validated snapshot; NotFoundError when ingestion has not run."""
    from training.snapshots import SnapshotLayout, read_snapshot_manifest

    uri = SnapshotLayout(config.s3_bucket, config.data_prefix).uri(data_date)
    read_snapshot_manifest(uri)
    return uri


def train_challenger(config: RetrainConfig, data_date: str, snapshot_uri: str) -> dict[str, Any]:
    """Train on the snapshot and write the challenger's store entry (reused once decided)."""
    from training.pipeline import train_and_save
    from training.snapshots import load_snapshot

    recorded = recorded_decision(config, data_date)
    if recorded is not None:
        logger.info("%s was decided already (%s); not training again", data_date, recorded.outcome)
        return {"tag": recorded.challenger_tag, "reused": True}
    settings = TrainingSettings.from_env()
    tag = train_and_save(settings, load_snapshot(snapshot_uri, settings))
    logger.info("challenger %s trained on %s", tag, snapshot_uri)
    return {"tag": tag, "reused": False}


def _model_info(tag: str) -> tuple[dict[str, Any], str | None]:
    """Recorded hyper-parameters and data sha256 of a local store entry."""
    import bentoml

    metadata = bentoml.models.get(tag).info.metadata
    recipe, data_sha256 = metadata.get("hyperparameters"), metadata.get("data_sha256")
    return (dict(recipe) if isinstance(recipe, Mapping) else {}), (
        str(data_sha256) if data_sha256 else None
    )


def evaluate_challenger(
    config: RetrainConfig, data_date: str, snapshot_uri: str, challenger: Mapping[str, Any]
) -> dict[str, Any]:
    """Score the challenger and the champion alike (training.gate); small JSON."""
    from training import gate, mirror
    from training.snapshots import load_snapshot

    recorded = recorded_decision(config, data_date)
    if recorded is not None:
        return {
            "champion_version": recorded.champion_version,
            "comparison": _dump(recorded.comparison),
        }
    try:
        champion = mirror.champion_version(config.s3_bucket, config.s3_prefix)
    except mirror.NotFoundError:
        champion = None
    settings = TrainingSettings.from_env()
    ingested = load_snapshot(snapshot_uri, settings)
    challenger_recipe, _ = _model_info(str(challenger["tag"]))
    champion_recipe = None
    if champion is not None:
        champion_tag = mirror.pull(config.s3_bucket, config.s3_prefix, champion)
        champion_recipe, champion_data = _model_info(champion_tag)
        same_recipe = gate.recipe_of(champion_recipe) == gate.recipe_of(challenger_recipe)
        if same_recipe and champion_data == ingested.data.data_sha256:
            comparison = gate.identical_comparison(
                ingested.data.data_sha256, ingested.data.rows_by_type()
            )
            return {"champion_version": champion, "comparison": _dump(comparison)}
    comparison = gate.compare(
        ingested.data.frame, ingested.data.data_sha256, settings, challenger_recipe, champion_recipe
    )
    return {"champion_version": champion, "comparison": _dump(comparison)}


def _dump(model: BaseModel | None) -> dict[str, Any] | None:
    return None if model is None else model.model_dump(mode="json")


def decide(
    config: RetrainConfig,
    data_date: str,
    challenger: Mapping[str, Any],
    evaluation: Mapping[str, Any],
) -> dict[str, Any]:
    """The gate's decision for the date, recorded in S3 once (a re-run returns the record)."""
    from training import gate
    from training.mirror import S3AccessError, make_s3_client
    from training.snapshots import write_object

    recorded = recorded_decision(config, data_date)
    if recorded is None:
        comparison = evaluation.get("comparison")
        decision = gate.decide(
            data_date=data_date,
            challenger_tag=str(challenger["tag"]),
            champion_version=evaluation.get("champion_version"),
            comparison=None if comparison is None else gate.Comparison.model_validate(comparison),
            threshold=config.threshold,
            force=config.force_promotion,
            decided_at=_utc_now(),
        )
        try:
            write_object(
                make_s3_client(),
                config.s3_bucket,
                decision_key(config, data_date),
                decision.model_dump_json(indent=2).encode() + b"\n",
                ContentType="application/json",
                IfNoneMatch="*",
            )
            recorded = decision
        except S3AccessError as exc:
            if exc.code != "PreconditionFailed":
                raise
            recorded = recorded_decision(config, data_date)  # a concurrent run decided first
            if recorded is None:
                raise
    outcome = "PROMOTE" if recorded.promoted else "KEPT CHAMPION"
    logger.info(
        "gate for %s: %s %s: %s", data_date, outcome, recorded.challenger_tag, recorded.reason
    )
    result: dict[str, Any] = recorded.model_dump(mode="json")
    return result


def publish(config: RetrainConfig, decision: Mapping[str, Any]) -> dict[str, Any]:
    """Push the promoted challenger to the mirror and point the champion at it."""
    from training import mirror
    from training.gate import Decision

    decided = Decision.model_validate(decision)
    pushed = mirror.push(decided.challenger_tag, config.s3_bucket, config.s3_prefix)
    try:
        current = mirror.champion_version(config.s3_bucket, config.s3_prefix)
    except mirror.NotFoundError:
        current = None
    version = decided.challenger_version
    if current == version:
        logger.info("%s is the champion already", version)
        return {"version": version, "uri": pushed.uri, "promoted": False}
    if current != decided.champion_version:
        # Another run promoted since this gate compared against the old champion.
        raise mirror.ConflictError(
            f"the champion is {current}, not {decided.champion_version} the gate compared "
            f"{version} with; run the retrain DAG again for a new decision"
        )
    mirror.promote(config.s3_bucket, config.s3_prefix, version)
    return {"version": version, "uri": pushed.uri, "promoted": True}


def rebuild(config: RetrainConfig, version: str) -> dict[str, Any]:
    """The image bundling ``version``, built and pushed unless the registry holds it."""
    from training.deploy import build_and_push

    (registry,) = config.required("registry")
    image = build_and_push(
        bucket=config.s3_bucket,
        prefix=config.s3_prefix,
        repository=f"{registry.rstrip('/')}/{config.repository}",
        version=version,
    )
    return image.as_dict()


def roll_out(config: RetrainConfig, image: str) -> dict[str, Any]:
    """Run the image in the ECS service and wait until it is stable (or fail at the limit)."""
    from training.deploy import rollout

    cluster, service = config.required("ecs_cluster", "ecs_service")
    result = rollout(
        cluster=cluster,
        service=service,
        image=image,
        container=config.ecs_container,
        timeout_s=config.rollout_timeout_minutes * 60,
        region=config.aws_region,
    )
    return result.as_dict()

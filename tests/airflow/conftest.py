"""Fixtures for the DAG tests: Airflow on SQLite in a temporary home, a moto server for S3
and ECS, Debian's docker-registry as the image registry, the local Docker engine.

Airflow reads its configuration when it is first imported, so only these fixtures import
it, after pointing AIRFLOW_HOME and the DAG folder at the test's own places.  A missing
Airflow or registry fails the tests with the command that installs it; nothing is skipped.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.container.conftest import docker_engine  # noqa: F401 - the same engine check
from tests.fixtures.cli import REPO_ROOT
from tests.fixtures.moto import MOTO_AWS_ENV, running_moto
from tests.fixtures.server import free_port, stop_process
from training.data import WineData
from training.pipeline import Ingested
from training.validate import validate_frame

DAGS_FOLDER = REPO_ROOT / "airflow_dags"
INSTALL_HINT = "`make install-airflow` installs requirements/airflow.lock into the venv"
REGISTRY_HINT = (
    "Debian's docker-registry is not installed: `make install-airflow` (as root) or "
    "`apt-get install docker-registry`"
)
# Small forests keep the DAG runs quick; the gate compares recipes, not sizes.
TEST_TREES = 10
TEST_FOLDS = 3
CONTAINER_NAME = "wine-quality"
REGISTRY_TIMEOUT_S = 30.0


def airflow_environment(home: Path) -> dict[str, str]:
    """Airflow on SQLite in ``home``, reading this repository's DAGs, without examples."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
    }


def require_airflow() -> None:
    """Fail (never skip) when Airflow is not installed in this interpreter's venv."""
    if importlib.util.find_spec("airflow") is None:
        pytest.fail(f"Airflow is not installed in {sys.prefix}: {INSTALL_HINT}")


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A temporary AIRFLOW_HOME with an initialised SQLite metadata database."""
    require_airflow()
    if "airflow" in sys.modules:
        pytest.fail("airflow was imported before its test home was set; import it in tests only")
    home = tmp_path_factory.mktemp("airflow_home")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in airflow_environment(home).items():
            patch.setenv(name, value)
        from airflow.utils import db

        db.initdb()
        yield home


@pytest.fixture(scope="session")
def dagbag(airflow_home: Path) -> Any:
    """The DAG folder parsed as the scheduler parses it."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


@pytest.fixture(scope="session")
def aws_stand_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto server (S3 and ECS) on 127.0.0.1 whose ECS services run one task each."""
    log_path = tmp_path_factory.mktemp("moto_ecs") / "moto.log"
    # moto reports this many running tasks per service: one desired task is stable.
    with running_moto(log_path, {"MOTO_ECS_SERVICE_RUNNING": "1"}) as url:
        yield url


def _registry_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="session")
def image_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's docker-registry on 127.0.0.1 (plain HTTP: Docker trusts loopback); its host."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail(REGISTRY_HINT)
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = root / "config.yml"
    config.write_text(
        json.dumps(
            {
                "version": 0.1,
                "log": {"level": "warn"},
                "storage": {"filesystem": {"rootdirectory": str(root / "data")}},
                "http": {"addr": f"127.0.0.1:{port}"},
            }
        )
    )
    with (root / "registry.log").open("ab") as log:
        process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    deadline = time.monotonic() + REGISTRY_TIMEOUT_S
    while not _registry_answers(f"http://127.0.0.1:{port}/v2/"):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process(process, timeout=5)
            pytest.fail(f"docker-registry did not start: {(root / 'registry.log').read_text()}")
        time.sleep(0.1)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop_process(process, timeout=10)


def registry_tags(registry: str, repository: str) -> list[str]:
    """Tags of a repository in the local registry ([] when it has none)."""
    try:
        url = f"http://{registry}/v2/{repository}/tags/list"
        with urllib.request.urlopen(url, timeout=5) as response:
            return list(json.load(response).get("tags") or [])
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return []
        raise


@dataclass(frozen=True)
class StandIns:
    """One test's bucket and ECS service in the moto server, and the registry."""

    bucket: str
    cluster: str
    service: str
    registry: str

    def run_conf(self, **extra: Any) -> dict[str, Any]:
        """DAG params pointing both DAGs at these stand-ins."""
        return {
            "s3_bucket": self.bucket,
            "registry": self.registry,
            "ecs_cluster": self.cluster,
            "ecs_service": self.service,
            **extra,
        }


def register_running_revision(ecs: Any, family: str) -> str:
    """A task definition shaped like Terraform's (one container), as the service runs it."""
    response = ecs.register_task_definition(
        family=family,
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
        executionRoleArn="arn:aws:iam::123456789012:role/wineq-execution",
        taskRoleArn="arn:aws:iam::123456789012:role/wineq-task",
        containerDefinitions=[
            {
                "name": CONTAINER_NAME,
                "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/wine-quality:old-0000000",
                "essential": True,
                "portMappings": [{"containerPort": 3000, "protocol": "tcp"}],
                "environment": [{"name": "WINEQ_LOG_FORMAT", "value": "json"}],
                "readonlyRootFilesystem": True,
            }
        ],
        tags=[{"key": "project", "value": "wineq"}],
    )
    return str(response["taskDefinition"]["taskDefinitionArn"])


@pytest.fixture
def stand_ins(
    aws_stand_in: str, image_registry: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> StandIns:
    """The standard AWS chain pointed at moto, with a fresh bucket and a running service."""
    import boto3

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_stand_in)
    for name, value in MOTO_AWS_ENV.items():
        monkeypatch.setenv(name, value)

    suffix = uuid.uuid4().hex[:10]
    bucket = f"wineq-airflow-{suffix}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    ecs = boto3.client("ecs")
    cluster = f"wineq-{suffix}"
    ecs.create_cluster(clusterName=cluster)
    running = register_running_revision(ecs, f"wineq-{suffix}")
    ecs.create_service(
        cluster=cluster,
        serviceName="wine-quality",
        taskDefinition=running,
        desiredCount=1,
        launchType="FARGATE",
    )
    return StandIns(bucket, cluster, "wine-quality", image_registry)


@pytest.fixture
def model_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A BentoML home of the test's own, so the entries the DAGs write never become the
    session store's latest entry, which other tests build their image from."""
    from bento.bentoml_adapter import model_store_at

    home = tmp_path / "bentoml_home"
    for sub in ("models", "bentos", "envs", "tmp"):
        (home / sub).mkdir(parents=True)
    monkeypatch.setenv("BENTOML_HOME", str(home))
    monkeypatch.setenv("BENTOML_DO_NOT_TRACK", "True")
    with model_store_at(home):
        yield home


@pytest.fixture
def training_env(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> Callable[..., None]:
    """Set the worker's WINEQ_TRAIN_* environment: the shared data, small forests."""

    def configure(**settings: Any) -> None:
        values = {"data_dir": data_dir, "n_estimators": TEST_TREES, "cv_folds": TEST_FOLDS}
        for name, value in {**values, **settings}.items():
            monkeypatch.setenv(f"WINEQ_TRAIN_{name.upper()}", str(value))

    configure()
    return configure


@pytest.fixture
def ingested(wine_data: WineData) -> Ingested:
    """The shared UCI data, validated."""
    return Ingested(data=wine_data, report=validate_frame(wine_data.frame))


def run_dag(dagbag: Any, dag_id: str, logical_date: str, **kwargs: Any) -> Any:
    """``dag.test()`` one run at midnight UTC of ``logical_date``; the DagRun."""
    import pendulum

    dag = dagbag.get_dag(dag_id)
    assert dag is not None, f"{dag_id} is not in the DAG folder"
    day = pendulum.parse(logical_date, tz="UTC")
    return dag.test(logical_date=day, **kwargs)


def task_states(run: Any) -> dict[str, str]:
    """State of each task instance of a run."""
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def xcom(run: Any, task_id: str) -> Any:
    """The return value a task of ``run`` pushed."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(
            run_id=run.run_id, dag_ids=run.dag_id, task_ids=task_id, key="return_value"
        )
        rows = session.scalars(query).all()
        assert rows, f"{task_id} pushed no XCom"
        return XComModel.deserialize_value(rows[0])

"""Contract tests of bento/bentoml_adapter.py: one per touchpoint of BentoML's private API.

They run against the installed BentoML, so an upgrade that moves or changes a touchpoint
fails here, next to the adapter, instead of in production.  The worker plan's parity with
`bentoml serve` and the worker entry point are exercised end to end by
tests/integration/test_launch.py.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import bentoml
import pytest
from bentoml import IODescriptor
from starlette.requests import Request
from starlette.responses import Response
from starlette.testclient import TestClient

from bento import bentoml_adapter
from bento.bentoml_adapter import (
    SUPPORTED_VERSIONS,
    IORootModel,
    RootInput,
    UnsupportedBentoMLError,
    WorkerPlan,
    bind_api_methods,
    model_store_at,
    require_supported_bentoml,
    worker_option_names,
)


def test_the_installed_bentoml_is_a_supported_version() -> None:
    assert bentoml.__version__ in SUPPORTED_VERSIONS
    require_supported_bentoml()


def test_another_bentoml_version_is_refused_with_what_to_do() -> None:
    with pytest.raises(UnsupportedBentoMLError, match=r"1\.4\.40.*9\.9\.9 is installed"):
        require_supported_bentoml("9.9.9")


def test_the_io_hooks_have_the_signatures_bentoml_calls() -> None:
    request_hook = inspect.signature(IODescriptor.from_http_request)
    response_hook = inspect.signature(IODescriptor.to_http_response)
    assert list(request_hook.parameters) == ["request", "serde"]
    assert list(response_hook.parameters) == ["obj", "serde"]
    assert issubclass(IORootModel, IODescriptor)
    assert IORootModel[list[int]].model_validate([1, 2]).root == [1, 2]


class _WholeBody(RootInput, IODescriptor):
    """An input spec whose parsed value is the API's one argument."""

    text: str = ""

    @classmethod
    async def from_http_request(cls, request: Request, serde: Any) -> Any:
        return ["body", (await request.body()).decode()]


class _Joined(IORootModel[list[str]]):
    @classmethod
    async def to_http_response(cls, obj: Any, serde: Any) -> Response:
        return Response("|".join(obj), media_type="text/plain")


@bentoml.service
class _Echo:
    @bentoml.api(input_spec=_WholeBody, output_spec=_Joined)
    def echo(self, value: list[str]) -> list[str]:
        return [*value, "answered"]


def test_a_root_input_is_still_published_as_named_fields() -> None:
    # BentoML's clients read `root_input` from /schema.json to decide how to send
    # arguments; without it they send the body's fields as keywords.
    assert _WholeBody.__root_input__ is True
    schema = _WholeBody.model_json_schema()
    assert bentoml_adapter.ROOT_INPUT_SCHEMA_KEY not in schema
    assert "text" in schema["properties"]


def test_a_root_input_reaches_the_api_as_its_one_argument_and_the_output_hook_answers() -> None:
    with TestClient(_Echo.to_asgi()) as client:  # type: ignore[attr-defined]
        response = client.post(
            "/echo", content=b"raw", headers={"content-type": "application/json"}
        )
    assert response.status_code == 200
    assert response.text == "body|raw|answered"


# What BentoML's app called through the bound callables, by API name.
_BOUND_CALLS: list[str] = []


# Its own metrics off: a second app in this process would register BentoML's again.
@bentoml.service(metrics={"enabled": False})
class _Bound:
    """A service that binds its API methods once and records the calls BentoML makes."""

    def __init__(self) -> None:
        for name in bind_api_methods(self):
            method = vars(self)[name]

            def recorded(
                *args: Any, _name: str = name, _local: Any = method.local, **kw: Any
            ) -> Any:
                _BOUND_CALLS.append(_name)
                return _local(*args, **kw)

            method.local = recorded

    @bentoml.api(batchable=True, max_batch_size=8, max_latency_ms=1_000)
    def double(self, values: list[int]) -> list[int]:
        return [2 * v for v in values]

    @bentoml.api
    def shout(self, text: str) -> str:
        return text.upper()


def test_api_methods_bound_once_are_what_the_app_calls_for_every_request() -> None:
    # The descriptor yields to the instance's attribute only as a non-data descriptor.
    assert not hasattr(type(vars(_Bound.inner)["double"]), "__set__")  # type: ignore[attr-defined]
    _BOUND_CALLS.clear()
    with TestClient(_Bound.to_asgi()) as client:  # type: ignore[attr-defined]
        batched = [client.post("/double", json={"values": [i]}).json() for i in range(3)]
        single = client.post("/shout", json={"text": "hi"}).text
    assert batched == [[0], [2], [4]]
    assert single == "HI"
    # Every request went through the callables bound at start-up, not fresh ones.
    assert _BOUND_CALLS == ["double"] * 3 + ["shout"]


def test_the_worker_accepts_every_option_the_plan_gives_it() -> None:
    plan = WorkerPlan(
        target="bento.service:WineQualityService",
        service_name="wine_quality",
        host="127.0.0.1",
        port=3000,
        backlog=2048,
        options=["--args", "{}", "--timeout-keep-alive", "61", "--timeout", "20"],
        env={},
        working_dir=".",
    )
    accepted = worker_option_names()
    given = {arg for arg in plan.worker_args(3) if arg.startswith("--")}
    assert given <= accepted, f"the worker does not accept {given - accepted}"
    assert bentoml_adapter.WORKER_MODULE == "_bentoml_impl.worker.service"


def test_model_store_at_points_this_process_at_another_store(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    with model_store_at(tmp_path):
        assert bentoml.models.list() == []
        with bentoml.models.create("adapter_probe") as model:
            Path(model.path, "weights.txt").write_text("1")
        (stored,) = bentoml.models.list()
        assert Path(stored.path).is_relative_to(tmp_path / "models")


_HOOKED_SERVICE = """
import pathlib
import bentoml

@bentoml.service
class Hooked:
    @bentoml.on_deployment
    def prepare():
        marker = pathlib.Path(__file__).with_name("ran.txt")
        marker.write_text(marker.read_text() + "x" if marker.exists() else "x")

    @bentoml.api
    def echo(self, text: str) -> str:
        return text
"""


def test_the_plan_runs_deployment_hooks_as_bentoml_serve_does(tmp_path: Path) -> None:
    from _bentoml_impl.server.serving import server_on_deployment

    (tmp_path / "hooked.py").write_text(_HOOKED_SERVICE)
    (tmp_path / "models").mkdir()
    with model_store_at(tmp_path):
        plan = bentoml_adapter.plan_worker("hooked:Hooked", working_dir=str(tmp_path))
        assert plan.hooks_run == ["prepare"]
        assert (tmp_path / "ran.txt").read_text() == "x"
        # BentoML's own pre-start step runs the same hook the same way.
        server_on_deployment(bentoml_adapter._load("hooked:Hooked", str(tmp_path)))
    assert (tmp_path / "ran.txt").read_text() == "xx"
    assert plan.service_name == "Hooked"
    assert plan.env["PROMETHEUS_MULTIPROC_DIR"].startswith(str(tmp_path))

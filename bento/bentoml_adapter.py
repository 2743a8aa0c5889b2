"""The one module that reaches into BentoML's private API.

Written for, and contract-tested against, the BentoML versions in ``SUPPORTED_VERSIONS``
(``tests/unit/test_bentoml_adapter.py`` has a test per touchpoint).  Importing it under
another version raises :class:`UnsupportedBentoMLError` before anything private is
touched, so an upgrade fails loudly at start-up instead of changing behaviour quietly.
On an upgrade: run the contract tests against the new version, then add it here.

Touchpoints:

- IO specs: ``IORootModel`` (an IO spec whose whole value is one argument), the
  ``__root_input__`` flag BentoML's app reads to pass the parsed input as the API's
  single argument, and the hook signatures ``from_http_request(request, serde)`` and
  ``to_http_response(obj, serde)``.  Used by ``bento/io.py``.
- Serving without the supervisor: the service loader, the service's configuration
  injection, the worker environment and deployment hooks ``bentoml serve`` prepares,
  the configuration values it turns into worker options, and the worker's entry point.
  Used by ``bento/launch.py``.
- API methods bound once: BentoML's HTTP app looks an API method up on the service
  instance for every request (``getattr(instance, name).local``), and the
  ``APIMethod`` descriptor rebuilds the bound callable each time (a signature
  inspection and a ``functools.wraps``).  As a non-data descriptor it yields to the
  instance's own attribute, so :func:`bind_api_methods` stores the bound callables on
  the instance once.  Used by ``bento/service.py``.
- Tests only: pointing an already-configured process at another model store.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import bentoml

SUPPORTED_VERSIONS: Final[tuple[str, ...]] = ("1.4.40",)
WORKER_MODULE: Final = "_bentoml_impl.worker.service"
# The flag BentoML's HTTP app reads on an input spec: pass the parsed value as the API's
# one positional argument instead of spreading its fields as keyword arguments.
ROOT_INPUT_FLAG: Final = "__root_input__"
# The worker id circus gives the first (here: only) worker of a watcher.
FIRST_WORKER_ID: Final = "1"


class UnsupportedBentoMLError(RuntimeError):
    """The installed BentoML is not a version this adapter was written and tested for."""


def require_supported_bentoml(version: str = bentoml.__version__) -> None:
    """Refuse to run on a BentoML version the adapter's contract tests have not covered."""
    if version not in SUPPORTED_VERSIONS:
        raise UnsupportedBentoMLError(
            f"bento/bentoml_adapter.py supports BentoML {', '.join(SUPPORTED_VERSIONS)}; "
            f"{version} is installed. Run tests/unit/test_bentoml_adapter.py against it, "
            "then add it to SUPPORTED_VERSIONS."
        )


require_supported_bentoml()

from _bentoml_sdk.io_models import IODescriptor, IORootModel  # noqa: E402

__all__ = ["IODescriptor", "IORootModel", "RootInput"]


# The key BentoML adds to a root input's JSON schema (``/schema.json``); its HTTP clients
# then accept only one positional argument instead of the body's named fields.
ROOT_INPUT_SCHEMA_KEY: Final = "root_input"


class RootInput:
    """Mixin for an input spec whose whole parsed value is the API's single argument.

    An input spec may override ``from_http_request(cls, request, serde)``; BentoML calls
    it with the Starlette request and passes its result to the API as is.  The published
    schema still describes the body as an object of named fields, so BentoML's own
    clients send them as keywords: ``client.predict(features={...})``.
    """

    __root_input__ = True

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The body's schema, without the root-input mark that would change clients."""
        schema: dict[str, Any] = super().model_json_schema(*args, **kwargs)  # type: ignore[misc]
        schema.pop(ROOT_INPUT_SCHEMA_KEY, None)
        return schema


# ------------------------------------------------------------ serving without the supervisor


@dataclass(frozen=True)
class WorkerPlan:
    """What ``bentoml serve`` would hand its one worker: options, environment, directory."""

    target: str
    service_name: str
    host: str
    port: int
    backlog: int
    options: list[str]
    env: dict[str, str]
    working_dir: str
    hooks_run: list[str] = field(default_factory=list)

    def worker_args(self, fd: int | str) -> list[str]:
        """The worker's command line after ``-m <worker module>``, bound to socket ``fd``."""
        return [
            self.target,
            "--fd",
            str(fd),
            "--service-name",
            self.service_name,
            "--backlog",
            str(self.backlog),
            "--worker-id",
            FIRST_WORKER_ID,
            *self.options,
        ]


def plan_worker(
    target: str,
    *,
    working_dir: str | None = None,
    host: str | None = None,
    port: int | None = None,
    backlog: int | None = None,
    timeout: int | None = None,
    timeout_keep_alive: int | None = None,
    timeout_graceful_shutdown: int | None = None,
) -> WorkerPlan:
    """Load the service as ``bentoml serve`` does and derive its worker's options and env.

    Mirrors BentoML's ``serve_http`` (``_bentoml_impl/server/serving.py``) for a service
    with one worker and no dependencies, minus the circus arbiter: the service's config
    is injected, its models resolved and its deployment hooks run, and every option the
    worker would get is computed from the same configuration.
    """
    from _bentoml_impl.server.allocator import ResourceAllocator
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml.serving import construct_ssl_args, construct_timeouts_args, ensure_prometheus_dir

    env = _cli_global_options()
    directory = working_dir or (target if Path(target).expanduser().is_dir() else ".")
    service = _load(target, directory)
    service.inject_config()
    if service.dependencies:
        raise ValueError(f"{service.name} has dependencies: serve it with `bentoml serve`")

    env["PROMETHEUS_MULTIPROC_DIR"] = ensure_prometheus_dir()
    for variable in service.envs:
        if variable.stage == "build" or variable.name in env:
            continue
        value = _env_value(variable)
        if value is None:
            raise ValueError(f"environment variable {variable.name!r} is required but not set")
        env[variable.name] = value
    workers, worker_env = ResourceAllocator().get_worker_env(service)
    if workers != 1:
        raise ValueError(f"{service.name} asks for {workers} workers; the launcher runs one")
    hooks = _on_deployment(service)

    ssl = BentoMLContainer.ssl
    if ssl.enabled.get() and not ssl.certfile.get():
        raise ValueError("ssl is enabled but no ssl certfile is configured")
    host = host or BentoMLContainer.http.host.get()
    port = port or BentoMLContainer.http.port.get()
    options = [
        "--args",
        json.dumps(BentoMLContainer.bento_arguments.get()),
        *construct_ssl_args(
            ssl_certfile=ssl.certfile.get(),
            ssl_keyfile=ssl.keyfile.get(),
            ssl_keyfile_password=ssl.keyfile_password.get(),
            ssl_version=ssl.version.get(),
            ssl_cert_reqs=ssl.cert_reqs.get(),
            ssl_ca_certs=ssl.ca_certs.get(),
            ssl_ciphers=ssl.ciphers.get(),
        ),
        *construct_timeouts_args(
            timeout_keep_alive=timeout_keep_alive,
            timeout_graceful_shutdown=timeout_graceful_shutdown,
        ),
        *(["--timeout", str(timeout)] if timeout else []),
    ]
    env.update(worker_env)
    scheme = "https" if ssl.enabled.get() else "http"
    shown_host = "localhost" if host in ("0.0.0.0", "::") else host  # noqa: S104
    env["BENTOML_RUNNER_MAP"] = json.dumps({service.name: f"{scheme}://{shown_host}:{port}"})
    return WorkerPlan(
        target=target,
        service_name=service.name,
        host=host,
        port=int(port),
        backlog=int(backlog or BentoMLContainer.api_server_config.backlog.get()),
        options=options,
        env=env,
        working_dir=str(Path(directory).absolute()),
        hooks_run=hooks,
    )


def _cli_global_options() -> dict[str, str]:
    """Apply what the ``bentoml`` command's global options do to this process's environment.

    ``--quiet``/``--verbose`` (env ``BENTOML_VERBOSITY``) and ``--do-not-track`` (env
    ``BENTOML_DO_NOT_TRACK``) write ``os.environ``, which the worker then inherits.
    Returns the variables they changed.
    """
    from bentoml._internal.configuration import VERBOSITY_ENV_VAR, set_verbosity
    from bentoml._internal.utils.analytics import BENTOML_DO_NOT_TRACK

    before = dict(os.environ)
    set_verbosity(int(os.environ.get(VERBOSITY_ENV_VAR) or 0))
    if os.environ.get(BENTOML_DO_NOT_TRACK, "").strip().lower() in _CLICK_TRUE:
        os.environ[BENTOML_DO_NOT_TRACK] = "True"
    return {key: value for key, value in os.environ.items() if before.get(key) != value}


# The strings click reads as true for a boolean flag's environment variable.
_CLICK_TRUE: Final = frozenset({"1", "true", "t", "yes", "y", "on"})


def _env_value(variable: Any) -> str | None:
    """A service ``envs`` entry's value the way ``bentoml serve`` resolves it."""
    if variable.name in os.environ:
        return os.environ[variable.name]
    return str(variable.value) if variable.value else None


def _load(target: str, working_dir: str) -> Any:
    """The service ``target`` names, loaded the way ``bentoml serve``'s supervisor does."""
    from _bentoml_impl.loader import load

    return load(bento_identifier=target, working_dir=working_dir)


def _on_deployment(service: Any) -> list[str]:
    """What ``bentoml serve`` does before it starts workers; returns the hooks it ran.

    BentoML's ``server_on_deployment`` resolves the service's models and runs its
    ``@bentoml.on_deployment`` hooks; importing it would also import the process
    supervisor (circus) that the launcher exists to leave out, so its steps are taken
    here (the contract tests hold them to BentoML's behaviour).
    """
    if service.needs_task_db():
        raise ValueError(f"{service.name} has task endpoints: serve it with `bentoml serve`")
    if bento := service.bento:
        for model in bento.info.all_models:
            model.to_model().resolve()
    else:
        for model in service.models:
            model.resolve()
    ran = []
    for name in dir(service.inner):
        member = getattr(service.inner, name)
        if callable(member) and getattr(member, "__bentoml_deployment_hook__", False):
            member()
            ran.append(name)
    return ran


def bind_api_methods(instance: object) -> list[str]:
    """Bind every BentoML API method of a service instance once; the names bound.

    What BentoML's app gets per request is then exactly what the descriptor would have
    built (the same callable, with its ``local`` attribute), without rebuilding it.
    """
    from _bentoml_sdk.method import APIMethod

    bound: list[str] = []
    for cls in reversed(type(instance).__mro__):
        for name, attribute in vars(cls).items():
            if isinstance(attribute, APIMethod):
                vars(instance)[name] = attribute.__get__(instance, type(instance))
                bound.append(name)
    return bound


def run_worker(args: Sequence[str]) -> None:
    """Run BentoML's HTTP worker in this process with a worker command line."""
    from _bentoml_impl.worker.service import main

    main(list(args), prog_name="bentoml-worker")


def worker_option_names() -> set[str]:
    """Every option BentoML's worker entry point accepts (for the contract tests)."""
    from _bentoml_impl.worker.service import main

    return {name for param in main.params for name in param.opts}


# ------------------------------------------------------------------------------- tests only


@contextlib.contextmanager
def model_store_at(home: Path) -> Iterator[None]:
    """Point this process's BentoML home and model store at ``home`` while inside, then back."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    providers: tuple[Any, ...] = (
        BentoMLContainer.bentoml_home,
        BentoMLContainer.model_store_dir,
        BentoMLContainer.model_store,
    )
    previous = [provider.get() for provider in providers]
    values = (str(home), str(home / "models"), ModelStore(home / "models"))
    for provider, value in zip(providers, values, strict=True):
        provider.set(value)
    try:
        yield
    finally:
        for provider, value in zip(providers, previous, strict=True):
            provider.set(value)

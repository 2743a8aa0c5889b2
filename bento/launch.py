"""Start the service's one worker the way ``bentoml serve`` would, without its supervisor.

``bentoml serve`` runs a supervisor process (circus) that imports the service to plan
its workers, then starts the worker, which imports it again.  On a Fargate task with a
quarter of a core that doubles start-up for a process that only watches one worker, a
job ECS already does for the whole task (``docs/benchmarks.md``, "Container").  This
launcher computes the worker's options and environment from the same configuration
``bentoml serve`` reads (``bento.bentoml_adapter.plan_worker``), binds the socket and runs
BentoML's own worker in this process.  ``tests/integration/test_launch.py`` compares the
two starts option by option.  It is the start of the image and of ``make serve``; the
keep-alive defaults to the serving setting ``WINEQ_KEEP_ALIVE_S`` (give ``bentoml serve``
the same with ``--timeout-keep-alive``).

    python -m bento.launch [TARGET] [--host H] [--port P] [--timeout-keep-alive S] ...
    python -m bento.launch --print-plan     # what the worker would get, as JSON
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import signal
import socket
import sys
from types import FrameType

DEFAULT_TARGET = "bento.service:WineQualityService"


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    # Before uvicorn takes over SIGTERM this stops a start-up; after its graceful
    # shutdown uvicorn re-raises the signal to this handler, which ends with code 0.
    raise SystemExit(0)


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None


def build_parser() -> argparse.ArgumentParser:
    """The subset of ``bentoml serve``'s options a production start uses (same names)."""
    parser = argparse.ArgumentParser(prog="python -m bento.launch", description=__doc__)
    parser.add_argument(
        "target",
        nargs="?",
        default=os.environ.get("BENTO_PATH", DEFAULT_TARGET),
        help="bento directory or service import string (default: $BENTO_PATH, else the service)",
    )
    parser.add_argument("--host", default=os.environ.get("BENTOML_HOST"))
    parser.add_argument("--port", type=int, default=_env_int("BENTOML_PORT"))
    parser.add_argument("--backlog", type=int)
    parser.add_argument("--timeout", type=int, default=_env_int("BENTOML_TIMEOUT"))
    parser.add_argument(
        "--timeout-keep-alive",
        type=int,
        help="seconds an idle connection stays open (default: WINEQ_KEEP_ALIVE_S)",
    )
    parser.add_argument("--timeout-graceful-shutdown", type=int)
    parser.add_argument(
        "--print-plan", action="store_true", help="print the worker's options and env, then exit"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """Plan the worker like ``bentoml serve``, bind host:port and run it in this process."""
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_cleanly)
    # Start-up creates hundreds of thousands of objects that live as long as the process
    # (modules, schemas, the app); cyclic GC passes over them are pure cost. Collect
    # nothing while the service is imported and planned, then freeze what it left so
    # later passes skip it. The service freezes again once it is built (bento/service.py),
    # and the CloudWatch exporter once its client is (bento/exporter.py).
    gc.disable()
    from bento.settings import ServiceSettings
    from training.envvars import InvalidSettingError, UnknownSettingError

    try:
        settings = ServiceSettings.from_env()
    except (InvalidSettingError, UnknownSettingError) as exc:
        # A configuration mistake: one line naming the variable, no traceback.
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.timeout_keep_alive is None:
        # The one server option the project sets: longer than the load balancer's idle
        # timeout (terraform/), so the balancer never reuses a connection the worker closed.
        args.timeout_keep_alive = settings.keep_alive_s
    try:
        from bento.bentoml_adapter import plan_worker, run_worker

        plan = plan_worker(
            args.target,
            host=args.host,
            port=args.port,
            backlog=args.backlog,
            timeout=args.timeout,
            timeout_keep_alive=args.timeout_keep_alive,
            timeout_graceful_shutdown=args.timeout_graceful_shutdown,
        )
    finally:
        gc.freeze()
        gc.enable()
    if args.print_plan:
        print(json.dumps({**dataclasses.asdict(plan), "worker_args": plan.worker_args("FD")}))
        return

    family = socket.AF_INET6 if ":" in plan.host else socket.AF_INET
    listener = socket.create_server((plan.host, plan.port), family=family, backlog=plan.backlog)
    listener.set_inheritable(True)
    os.environ.update(plan.env)
    os.chdir(plan.working_dir)
    run_worker(plan.worker_args(listener.fileno()))


if __name__ == "__main__":
    main(sys.argv[1:])

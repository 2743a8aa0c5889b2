"""Start the service's one worker directly, without BentoML's process supervisor.

`bentoml serve` starts a supervisor process that imports the service (about 1.7
CPU-seconds) before it forks the worker that imports it again.  On a Fargate task
with 0.25 vCPU that is about 7.5 s of start-up spent on a process that only watches
one worker, a job ECS already does for the whole task.  This launcher binds the
socket and runs BentoML's own worker entry point (the same ASGI app, adaptive
batching and metrics) in this process.  The image runs it; `make serve` and the
integration tests keep `bentoml serve`.

Standard library only until the worker is imported: it runs before anything else.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import signal
import socket
import sys
from pathlib import Path
from types import FrameType

DEFAULT_TARGET = "bento.service:WineQualityService"
HTTPX_CLI_MODULE = "httpx._main"


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    # Before uvicorn takes over SIGTERM this stops a start-up; after its graceful
    # shutdown uvicorn re-raises the signal to this handler, which ends with code 0.
    raise SystemExit(0)


def _fresh_prometheus_dir() -> str:
    """The multiprocess metrics folder BentoML's supervisor would have prepared."""
    home = Path(os.environ.get("BENTOML_HOME", Path.home() / "bentoml"))
    folder = home / "prometheus_multiproc_dir"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return str(folder)


def main(argv: list[str] | None = None) -> None:
    """Bind host:port and serve the bento (or service import string) in this process."""
    parser = argparse.ArgumentParser(prog="python -m bento.launch", description=__doc__)
    parser.add_argument(
        "target",
        nargs="?",
        default=os.environ.get("BENTO_PATH", DEFAULT_TARGET),
        help="bento directory or service import string (default: $BENTO_PATH, else the service)",
    )
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a container listens on all
    parser.add_argument("--port", type=int, default=int(os.environ.get("BENTOML_PORT", "3000")))
    parser.add_argument("--backlog", type=int, default=2048)
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, _exit_cleanly)
    # Start-up allocates hundreds of thousands of long-lived objects (modules, schemas,
    # the app); cyclic GC passes over them cost ~20 % of start-up CPU for nothing. The
    # service freezes them and turns GC back on once it is initialised (bento/service.py).
    gc.disable()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _fresh_prometheus_dir()
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    listener = socket.create_server((args.host, args.port), family=family, backlog=args.backlog)
    listener.set_inheritable(True)

    # httpx imports its command-line client (rich, pygments, click: ~0.05 CPU-s) when it
    # is imported, unless that import fails; then it installs a stub `main` for the
    # `httpx` command. A server never runs that command, so the import is refused here.
    sys.modules.setdefault(HTTPX_CLI_MODULE, None)  # type: ignore[arg-type]

    from _bentoml_impl.worker.service import main as worker_main

    worker_args = [args.target, "--fd", str(listener.fileno()), "--backlog", str(args.backlog)]
    worker_main([*worker_args, "--worker-id", "1"], prog_name="bentoml-worker")


if __name__ == "__main__":
    main(sys.argv[1:])

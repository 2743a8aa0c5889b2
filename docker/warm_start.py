"""Image build step: start the service once, wait for /readyz, stop it.

Run by docker/Dockerfile.j2 with bytecode writing on, so Python caches the bytecode of
exactly the modules a start imports (a read-only task cannot write it later), through
the same start the task uses (`python -m bento.launch`). Fails the build when the
service does not become ready. Standard library only.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request

PORT = 3999
READY_TIMEOUT_S = 300.0


def main() -> int:
    """Start, wait until ready (or fail), stop; the exit code says which."""
    command = [sys.executable, "-m", "bento.launch", "--host", "127.0.0.1", "--port", str(PORT)]
    server = subprocess.Popen(command)
    deadline = time.monotonic() + READY_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                print(f"warm start: the service exited with {server.returncode}", file=sys.stderr)
                return 1
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/readyz", timeout=2) as r:
                    if r.status == 200:
                        return 0
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        print(f"warm start: not ready after {READY_TIMEOUT_S:.0f} s", file=sys.stderr)
        return 1
    finally:
        server.terminate()
        server.wait(60)


if __name__ == "__main__":
    sys.exit(main())

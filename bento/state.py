"""What a worker knows about its own readiness.

The service owns one :class:`ServingState` per worker: it is the only writer (model
loaded, shutdown begun) and hands the object to the request guard, which only reads it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass
class ServingState:
    """What a worker knows about its own readiness."""

    model_version: str = "unknown"
    ready: bool = False
    draining: bool = False
    failure: str | None = None

    @property
    def serving(self) -> bool:
        """True while the worker should receive traffic (loaded and not shutting down)."""
        return self.ready and not self.draining

    def health(self) -> dict[str, Any]:
        """The earlier service's ``GET /health`` body (see bento.schemas.HealthResponse)."""
        if self.failure:
            status = "unhealthy"
        elif self.serving:
            status = "healthy"
        else:
            status = "degraded"
        return {
            "status": status,
            "timestamp": int(time.time()),
            "checks": {
                "model_loaded": self.ready,
                "model_verified": self.ready,
                "draining": self.draining,
            },
            "version": self.model_version,
        }

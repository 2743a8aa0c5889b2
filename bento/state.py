"""Per-worker serving state shared by the HTTP guard and the service instance.

Each BentoML worker process imports this module once; the service's ``__init__``
fills it in and the ASGI middleware only reads it.
"""

from __future__ import annotations

from dataclasses import dataclass


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


STATE = ServingState()

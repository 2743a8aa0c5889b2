"""What a worker knows about its own readiness.

The service owns one :class:`ServingState` per worker: it is the only writer (model
loaded, shutdown begun) and hands the object to the request guard, which only reads it.
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

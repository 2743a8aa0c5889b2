"""The ceiling of a Python HTTP server on this machine: a bare ASGI app that reads the body,
parses it as JSON and answers a constant JSON object, nothing else.

scripts/bench_serving.py runs it beside the model servers, under the same limits:

    python -m uvicorn scripts.asgi_ceiling:app --loop uvloop --http httptools --lifespan off
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

Message = MutableMapping[str, Any]

# About the size of the service's answer to one row.
ANSWER: Final = json.dumps({
    "prediction": 5,
    "confidence": 0.83,
    "probabilities": {"3": 0.0, "4": 0.03, "5": 0.83, "6": 0.13, "7": 0.01, "8": 0.0, "9": 0.0},
    "model_version": "ceiling",
    "out_of_distribution": [],
    "request_id": None,
}).encode()  # fmt: skip
HEADERS: Final = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(ANSWER)).encode()),
]


async def app(
    scope: Message,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    """Read the whole body, ``json.loads`` it, answer ANSWER (200)."""
    if scope["type"] != "http":
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if body:
        json.loads(body)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})

"""A small Server-Sent Events reader over httpx."""

import json
from typing import Any

import httpx


async def read_events(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    into: list[tuple[str, dict[str, Any]]] | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """Read a stream until the server closes it; returns (event, data) pairs, which also go
    into `into` as they arrive (to watch a stream that is still open)."""
    events: list[tuple[str, dict[str, Any]]] = [] if into is None else into
    kind, data = "message", ""
    async with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif line == "" and data:
                events.append((kind, json.loads(data)))
                kind, data = "message", ""
    return events

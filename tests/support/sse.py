"""A small Server-Sent Events reader over httpx."""

import json
from typing import Any

import httpx


async def read_events(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    into: list[tuple[str, dict[str, Any]]] | None = None,
    *,
    send: dict[str, Any] | None = None,
    until: str | None = None,
    status: int = 200,
) -> list[tuple[str, dict[str, Any]]]:
    """Read a stream until the server closes it (or until event `until`); returns (event,
    data) pairs, which also go into `into` as they arrive (to watch a stream that is still
    open). With `send`, the stream is the answer to POSTing that JSON body."""
    events: list[tuple[str, dict[str, Any]]] = [] if into is None else into
    kind, data = "message", ""
    request = (
        client.stream("POST", url, json=send, headers={**headers, "Accept": "text/event-stream"})
        if send is not None
        else client.stream("GET", url, headers=headers)
    )
    async with request as response:
        assert response.status_code == status, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif line == "" and data:
                events.append((kind, json.loads(data)))
                if kind == until:
                    break
                kind, data = "message", ""
    return events

"""Honest health: what is down is named, with 503 and `Retry-After`, for a request that met an
outage and for the health check alike."""

import asyncio
import json
import logging
import time
from typing import Any

from bishop_contracts.events import HealthCheck
from bishop_contracts.topics import Topic
from bishop_infra.faults import dependency_of, is_transient
from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from bishop_backend.infra import Infra

log = logging.getLogger("bishop.health")

WORKERS = {"ml-text": Topic.HEALTH_CHECK_TEXT, "ml-sound": Topic.HEALTH_CHECK_SOUND}
RETRY_AFTER_SECONDS = 5
CHECK_TIMEOUT = 3.0
# Long enough to say for how long a worker has been silent.
WORKER_SEEN_TTL = 24 * 3600.0
NAMES = {
    "database": "The database",
    "storage": "File storage",
    "state": "The shared state store (Redis)",
    "bus": "The message bus",
}


def _outage_classes() -> tuple[type[BaseException], ...]:
    """The client libraries' base errors; `outage_response` tells outages from bugs."""
    classes: list[type[BaseException]] = [OSError, SQLAlchemyError]
    for module, name in (
        ("redis.exceptions", "RedisError"),
        ("urllib3.exceptions", "HTTPError"),
        ("minio.error", "MinioException"),
        ("aiokafka.errors", "KafkaError"),
    ):
        try:
            classes.append(getattr(__import__(module, fromlist=[name]), name))
        except (ImportError, AttributeError):
            continue
    return tuple(classes)


OUTAGE_ERRORS = _outage_classes()


def unavailable(dependency: str) -> JSONResponse:
    what = NAMES.get(dependency, "A service Bishop depends on")
    return JSONResponse(
        {"detail": f"{what} is unavailable; try again in a moment", "dependency": dependency},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def outage_response(_: Request, exc: Exception) -> JSONResponse:
    if not is_transient(exc):
        raise exc
    dependency = dependency_of(exc) or "a service"
    log.warning("request failed: %s is unavailable (%s)", dependency, exc)
    return unavailable(dependency)


async def _probe(check: Any) -> dict[str, str]:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await check
    except Exception as exc:
        reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        return {"status": "down", "reason": reason}
    return {"status": "ok"}


async def _database(infra: Infra) -> None:
    async with infra.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _ping(infra: Infra) -> None:
    for topic in WORKERS.values():
        await infra.bus.publish(topic, HealthCheck())


async def remember_worker(infra: Infra, worker: str, answer: str) -> None:
    seen = {**json.loads(answer), "seen_at": time.time()}
    await infra.state.set_value(f"worker:{worker}", json.dumps(seen), WORKER_SEEN_TTL)


async def _worker(infra: Infra, worker: str) -> dict[str, Any]:
    try:
        raw = await infra.state.get_value(f"worker:{worker}")
    except Exception:
        return {"status": "unknown", "reason": "the shared state store is unavailable"}
    if raw is None:
        return {"status": "down", "reason": "has not reported since the backend started"}
    seen = json.loads(raw)
    age = time.time() - float(seen.pop("seen_at", 0))
    limit = infra.settings.worker_down_after_seconds
    if age > limit:
        return {**seen, "status": "down", "reason": f"silent for {age:.0f} s", "seen_ago": age}
    return {**seen, "status": seen.get("status", "ok"), "seen_ago": round(age, 1)}


async def check(infra: Infra) -> tuple[int, dict[str, Any]]:
    """Each dependency's and each worker's state; 503 when any of them is down."""
    database, storage, state, bus = await asyncio.gather(
        _probe(_database(infra)),
        _probe(infra.storage.exists("health-check")),
        _probe(infra.state.get_value("health-check")),
        _probe(_ping(infra)),
    )
    dependencies = {"database": database, "storage": storage, "state": state, "bus": bus}
    workers = {name: await _worker(infra, name) for name in WORKERS}
    down = [n for n, d in dependencies.items() if d["status"] != "ok"]
    down += [n for n, w in workers.items() if w["status"] != "ok"]
    body = {
        "status": "ok" if not down else "unavailable",
        "down": down,
        # The plain strings older clients read:
        **{name: d["status"] for name, d in dependencies.items()},
        "dependencies": dependencies,
        "workers": workers,
    }
    return (200 if not down else 503), body


async def ping_workers(infra: Infra) -> None:
    """Ask the workers for a heartbeat regularly, so the health check knows who is silent."""
    while True:
        try:
            await _ping(infra)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("could not ping the workers: %s", exc)
        await asyncio.sleep(infra.settings.worker_heartbeat_seconds)

import json

from bishop_contracts.events import HealthCheck
from bishop_contracts.topics import Topic
from fastapi import APIRouter
from sqlalchemy import text

from bishop_backend.api.deps import InfraDep

router = APIRouter(prefix="/utils", tags=["utils"])

WORKERS = {"ml-text": Topic.HEALTH_CHECK_TEXT, "ml-sound": Topic.HEALTH_CHECK_SOUND}


@router.get("/health-check")
async def health_check(infra: InfraDep) -> dict[str, object]:
    """The backend's own dependencies, and when each worker last answered a ping."""
    async with infra.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    await infra.storage.exists("health-check")
    workers: dict[str, object] = {}
    for worker, topic in WORKERS.items():
        await infra.bus.publish(topic, HealthCheck())
        seen = await infra.state.get_value(f"worker:{worker}")
        workers[worker] = json.loads(seen) if seen else None
    return {"status": "ok", "database": "ok", "storage": "ok", "bus": "ok", "workers": workers}

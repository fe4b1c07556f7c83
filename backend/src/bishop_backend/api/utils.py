from fastapi import APIRouter
from fastapi.responses import JSONResponse

from bishop_backend.api.deps import CurrentUser, InfraDep
from bishop_backend.models.health import HealthReport
from bishop_backend.models.profile import ProfilePublic
from bishop_backend.services import health, profile

router = APIRouter(prefix="/utils", tags=["utils"])


@router.get(
    "/health-check",
    response_model=HealthReport,
    responses={
        503: {
            "model": HealthReport,
            "description": "A dependency or a worker is down; `down` names them",
            "headers": {"Retry-After": {"description": "Seconds", "schema": {"type": "integer"}}},
        }
    },
)
async def health_check(infra: InfraDep) -> JSONResponse:
    """Each dependency's state, and each worker's (down when silent past its heartbeat)."""
    status_code, body = await health.check(infra)
    headers = {"Retry-After": str(health.RETRY_AFTER_SECONDS)} if status_code == 503 else {}
    return JSONResponse(body, status_code=status_code, headers=headers)


@router.get("/profile", response_model=ProfilePublic)
async def read_profile(infra: InfraDep, user: CurrentUser) -> ProfilePublic:
    """The workers' profile (`demo`: a tiny text model, voices not cloned), for the UI."""
    return await profile.profile(infra)

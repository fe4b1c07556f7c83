from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy.exc import IntegrityError

from bishop_backend.api.deps import (
    API_PREFIX,
    IdempotencyDep,
    InfraDep,
    OwnedAvatar,
    OwnedMaterial,
    RangeHeader,
    SessionDep,
)
from bishop_backend.api.responses import errors, not_json
from bishop_backend.errors import NotFound
from bishop_backend.models import (
    MaterialPublic,
    MaterialReprocess,
    TrainingRun,
    TrainingRunPublic,
    TrainingStatus,
)
from bishop_backend.services import materials, training
from bishop_backend.services.downloads import object_response
from bishop_backend.services.uploads import read_form

router = APIRouter(prefix="/avatars/{avatar_id}/train", tags=["training"])

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["type", "file"],
                    "properties": {
                        "type": {"type": "string", "enum": list(materials.MATERIAL_TYPES)},
                        "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
                    },
                }
            }
        },
    }
}


@router.post(
    "",
    response_model=list[MaterialPublic],
    status_code=201,
    openapi_extra=UPLOAD_BODY,
    # The route reads its multipart body itself: FastAPI sees no body to document these for.
    responses=errors(400, 413, 415),
)
async def upload_materials(
    request: Request,
    session: SessionDep,
    infra: InfraDep,
    avatar: OwnedAvatar,
    idempotency: IdempotencyDep,
) -> list[MaterialPublic] | JSONResponse:
    """Upload one or more files of one `type`: `basic` (text is extracted) or `voice_synthesis`."""
    # A repeat is answered before its body is read: nothing is stored twice.
    if idempotency and (earlier := await idempotency.replay(session)):
        return earlier
    settings = infra.settings
    form = await read_form(
        request, max_bytes=settings.max_upload_bytes, max_files=settings.max_files_per_upload
    )
    try:
        return await materials.upload(infra, session, avatar, form, API_PREFIX, idempotency)
    except IntegrityError:
        await session.rollback()
        if idempotency and (earlier := await idempotency.replay(session)):
            return earlier
        raise NotFound("The avatar was deleted meanwhile") from None
    finally:
        await form.close()


@router.get("/materials", response_model=list[MaterialPublic])
async def list_materials(session: SessionDep, avatar: OwnedAvatar) -> list[MaterialPublic]:
    return [
        materials.public(m, API_PREFIX) for m in await materials.list_materials(session, avatar)
    ]


@router.get(
    "/materials/{material_id}/download",
    response_class=StreamingResponse,
    openapi_extra=not_json("*/*", "The file as uploaded, with its own content type"),
)
async def download_material(
    infra: InfraDep, material: OwnedMaterial, range_: RangeHeader = None
) -> Response:
    return await object_response(
        infra.storage,
        material.storage_key,
        material.content_type,
        material.filename,
        range_header=range_,
    )


@router.get(
    "/materials/{material_id}/transcript",
    response_class=StreamingResponse,
    openapi_extra=not_json(
        "application/json", "The transcript the worker made", {"type": "object"}
    ),
)
async def download_transcript(infra: InfraDep, material: OwnedMaterial) -> StreamingResponse:
    if material.transcript_key is None:
        raise NotFound("This material has no transcript yet")
    return await object_response(infra.storage, material.transcript_key, "application/json")


@router.delete("/materials/{material_id}", status_code=204)
async def delete_material(session: SessionDep, infra: InfraDep, material: OwnedMaterial) -> None:
    await materials.delete_material(infra, session, material)


@router.post(
    "/materials/{material_id}/reprocess",
    response_model=MaterialPublic,
    status_code=202,
    responses=errors(409),
)
async def reprocess_material(
    session: SessionDep, material: OwnedMaterial, body: MaterialReprocess
) -> MaterialPublic:
    """Read a chat export again with `sender` (one of its `senders`) as the avatar; 409 while
    it is being processed."""
    material = await materials.reprocess(session, material, body.sender)
    return materials.public(material, API_PREFIX)


@router.post("/start", response_model=TrainingRunPublic, status_code=202, responses=errors(409))
async def start_training(session: SessionDep, infra: InfraDep, avatar: OwnedAvatar) -> TrainingRun:
    """Queue training on the processed materials; 409 while a run is queued or training."""
    return await training.start(infra, session, avatar)


@router.post("/stop", response_model=TrainingRunPublic, responses=errors(409))
async def stop_training(session: SessionDep, infra: InfraDep, avatar: OwnedAvatar) -> TrainingRun:
    return await training.stop(infra, session, avatar)


@router.get("/status", response_model=TrainingStatus)
async def training_status(
    session: SessionDep, infra: InfraDep, avatar: OwnedAvatar
) -> TrainingStatus:
    """The avatar's state, its latest run and, while one runs, what it is doing (`phase`)."""
    return await training.status(infra, session, avatar)

"""Training materials: upload (checked by content), list, download, delete, reprocess."""

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from typing import get_args

from bishop_contracts.events import MaterialType, MaterialUploaded
from bishop_contracts.text import input_problem
from bishop_contracts.topics import Topic
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.datastructures import FormData, UploadFile

from bishop_backend.errors import Conflict, NotFound, Unprocessable, UnsupportedMedia
from bishop_backend.infra import Infra
from bishop_backend.keys import material_key
from bishop_backend.models import Avatar, Material, MaterialPublic, MaterialStatus
from bishop_backend.models.common import utcnow
from bishop_backend.services.idempotency import Idempotency
from bishop_backend.services.outbox import emit
from bishop_backend.services.sniff import FileType, detect
from bishop_backend.services.sweeper import fail_if

MATERIAL_TYPES: tuple[str, ...] = get_args(MaterialType)
VOICE_KINDS = ("audio", "video")


@dataclass
class _Checked:
    upload: UploadFile
    filetype: FileType


def public(material: Material, api_prefix: str) -> MaterialPublic:
    url = f"{api_prefix}/avatars/{material.avatar_id}/train/materials/{material.id}/download"
    return MaterialPublic.model_validate(
        material, update={"url": url, "has_transcript": material.transcript_key is not None}
    )


async def list_materials(session: AsyncSession, avatar: Avatar) -> list[Material]:
    query = (
        select(Material).where(Material.avatar_id == avatar.id).order_by(col(Material.created_at))
    )
    return list((await session.exec(query)).all())


async def upload(
    infra: Infra,
    session: AsyncSession,
    avatar: Avatar,
    form: FormData,
    api_prefix: str,
    idempotency: Idempotency | None = None,
) -> list[MaterialPublic]:
    """Store every file of the form or none of them; the rows and the workers' events commit
    together. A refusal names the file it is about."""
    material_type = form.get("type")
    if material_type not in MATERIAL_TYPES:
        raise Unprocessable(f"must be one of {', '.join(MATERIAL_TYPES)}", field="type")
    files = [f for f in form.getlist("file") if isinstance(f, UploadFile)]
    if not files:
        raise Unprocessable("attach at least one file", field="file")
    checked = [_check(f, str(material_type)) for f in files]

    materials: list[Material] = []
    try:
        for item in checked:
            material = _new_material(avatar, str(material_type), item)
            await infra.storage.put_stream(
                material.storage_key, item.upload.file, material.size, material.content_type
            )
            materials.append(material)
        session.add_all(materials)
        _announce(session, avatar, materials)
        stored = [public(m, api_prefix) for m in materials]
        if idempotency is not None:
            idempotency.remember(session, 201, stored)
        await session.commit()
    except BaseException:
        with contextlib.suppress(Exception):
            await asyncio.gather(*(infra.storage.delete(m.storage_key) for m in materials))
        raise
    return stored


def _check(upload: UploadFile, material_type: str) -> _Checked:
    name = upload.filename or "file"
    if (problem := input_problem(name, multiline=False)) is not None:
        raise Unprocessable(f"the file name {name!r} {problem}", field="file")
    if not upload.size:
        raise Unprocessable(f"{name} is empty", field="file")
    try:
        filetype = detect(name, upload.file)
    except UnsupportedMedia as exc:
        # Some of detect's reasons are about the content alone: in a batch, say which file.
        if exc.detail.startswith(f"{name}:"):
            raise
        raise UnsupportedMedia(f"{name}: {exc.detail}") from None
    if material_type == "voice_synthesis" and filetype.kind not in VOICE_KINDS:
        raise UnsupportedMedia(
            f"{name}: a voice sample must be audio or video, not {filetype.kind}"
        )
    return _Checked(upload, filetype)


def _new_material(avatar: Avatar, material_type: str, item: _Checked) -> Material:
    material_id = uuid.uuid4()
    ft = item.filetype
    return Material(
        id=material_id,
        avatar_id=avatar.id,
        type=material_type,
        kind=ft.kind,
        filename=(item.upload.filename or f"file.{ft.ext}")[:255],
        content_type=ft.content_type,
        size=item.upload.size or 0,
        storage_key=material_key(avatar.owner_id, avatar.id, ft.kind, material_id, ft.ext),
    )


def _announce(session: AsyncSession, avatar: Avatar, materials: list[Material]) -> None:
    for m in materials:
        emit(session, Topic.MATERIALS, _uploaded(avatar, m, m.sender or avatar.name))


def _uploaded(avatar: Avatar, m: Material, person: str) -> MaterialUploaded:
    """The event that has the workers read a material; a new id each time, so a reprocess is
    not taken for a repeat of the upload."""
    return MaterialUploaded(
        avatar_id=avatar.id,
        material_id=m.id,
        type=m.type,  # type: ignore[arg-type]
        kind=m.kind,
        url=m.storage_key,
        filename=m.filename,
        language=avatar.language,
        person=person,
    )


_SETTLED = (MaterialStatus.PROCESSED, MaterialStatus.FAILED)


async def reprocess(session: AsyncSession, material: Material, sender: str) -> Material:
    """Read a stored chat export again with `sender` as the avatar; the new status and the
    workers' event commit together, so the request is never lost."""
    if sender not in {s.get("name") for s in material.senders}:
        found = ", ".join(str(s.get("name")) for s in material.senders[:10])
        hint = f"one of {found}" if found else "a sender found in a chat export"
        raise Unprocessable(f"must be {hint}", field="sender")
    avatar = await session.get(Avatar, material.avatar_id)
    if avatar is None:
        raise NotFound("Material not found")
    # Claimed with a conditional write: a second click, or a material already being read,
    # starts nothing twice.
    claimed = await fail_if(
        session,
        Material,
        material.id,
        col(Material.status).in_(_SETTLED),
        status=MaterialStatus.UPLOADED,
        status_detail=None,
        # The old reading's transcript is the other person's words: not shown, not trained on.
        transcript_key=None,
        sender=sender,
        updated_at=utcnow(),
    )
    if not claimed:
        raise Conflict("This material is still being processed; try again when it is done")
    emit(session, Topic.MATERIALS, _uploaded(avatar, material, sender))
    await session.commit()
    await session.refresh(material)
    return material


async def delete_material(infra: Infra, session: AsyncSession, material: Material) -> None:
    keys = [k for k in (material.storage_key, material.transcript_key) if k]
    await session.delete(material)
    await session.commit()
    for key in keys:
        await infra.storage.delete(key)

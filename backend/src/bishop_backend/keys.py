"""Object keys, in the thesis's layout:
`users/{user_id}/avatars/{avatar_id}/{file_type}/{file_id}.{ext}`."""

import uuid

from bishop_contracts.layout import avatar_prefix

__all__ = ["avatar_prefix", "dub_key", "material_key"]


def material_key(
    user_id: uuid.UUID, avatar_id: uuid.UUID, kind: str, material_id: uuid.UUID, ext: str
) -> str:
    return f"{avatar_prefix(user_id, avatar_id)}{kind}/{material_id}.{ext}"


def dub_key(user_id: uuid.UUID, avatar_id: uuid.UUID, message_id: uuid.UUID) -> str:
    return f"{avatar_prefix(user_id, avatar_id)}dubs/{message_id}.wav"

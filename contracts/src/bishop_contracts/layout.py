"""Object-key layout shared by every service (thesis §6.2.4):
`users/{user_id}/avatars/{avatar_id}/{file_type}/{file_id}.{ext}`."""

import uuid


def avatar_prefix(user_id: uuid.UUID | str, avatar_id: uuid.UUID | str) -> str:
    return f"users/{user_id}/avatars/{avatar_id}/"


def avatar_prefix_of(key: str) -> str:
    """The avatar prefix of a key in this layout; ValueError for a key outside it."""
    parts = key.split("/")
    if len(parts) < 5 or parts[0] != "users" or parts[2] != "avatars" or ".." in parts:
        raise ValueError(f"{key!r} is not under an avatar")
    return "/".join(parts[:4]) + "/"

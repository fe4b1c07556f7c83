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


# A dub (and each of its chunks) is stored twice: the thesis's 16-bit WAV, and beside it the same
# audio as MP3, which is a tenth to a fifth of the size (the player's first choice). A dub
# without its MP3 (voiced before it existed, or the encoder failed) still plays as WAV.
COMPRESSED_DUB_TYPE = "audio/mpeg"


def compressed_dub_key(wav_key: str) -> str:
    """`…/dubs/{message_id}.wav` -> `…/dubs/{message_id}.mp3` (a chunk's `…/{index}.wav` too)."""
    return f"{wav_key.removesuffix('.wav')}.mp3"

"""What an avatar can do now, said honestly: its lifecycle, and the notices a chat needs."""

from typing import Any

from fasthtml import common as fh
from starlette.requests import Request

from bishop_frontend.client import ApiError
from bishop_frontend.components import Nav, StatusBadge
from bishop_frontend.pages.common import api

# The backend's lifecycle values (see `Lifecycle` there): what the badge says.
LIFECYCLE_LABELS = {
    "no_materials": "No materials",
    "processing": "Processing materials",
    "materials_ready": "Materials ready",
    "training": "Training",
    "stopped": "Stopped",
    "failed": "Failed",
}


def lifecycle_label(avatar: dict[str, Any]) -> str:
    """Where the avatar stands, in a few words; only a trained avatar reads "Trained"."""
    state = avatar.get("lifecycle", "no_materials")
    if state == "trained":
        return f"Trained (v{avatar.get('version_number') or '?'})"
    return LIFECYCLE_LABELS.get(state, state.replace("_", " ").capitalize())


def LifecycleBadge(avatar: dict[str, Any]) -> Any:
    state = avatar.get("lifecycle", "no_materials")
    return StatusBadge(state, lifecycle_label(avatar), cls="lifecycle")


def is_trained(avatar: dict[str, Any]) -> bool:
    return avatar.get("version_number") is not None


def Checklist(avatar: dict[str, Any], chatted: bool = False) -> Any:
    """The three steps from a new avatar to a conversation, each marked from the lifecycle."""
    aid = avatar["id"]
    has_materials = avatar.get("lifecycle") != "no_materials" or is_trained(avatar)
    steps = [
        (has_materials, "Upload materials", "texts they wrote or said", f"/avatars/{aid}/train"),
        (is_trained(avatar), "Train", "a version of the model on them", f"/avatars/{aid}/train"),
        (chatted, "Chat", "talk to the trained avatar", f"/avatars/{aid}/chats"),
    ]
    return fh.Ol(
        *[
            fh.Li(
                fh.Span("✓" if done else str(n), cls="step-mark", aria_hidden="true"),
                fh.Div(Nav(href, title), fh.Span(f" — {hint}", cls="muted")),
                fh.Span("done" if done else "to do", cls="visually-hidden"),
                cls="step done" if done else "step",
            )
            for n, (done, title, hint, href) in enumerate(steps, start=1)
        ],
        cls="checklist card",
        id="checklist",
        aria_label="Getting started",
    )


# What a notice says of the avatar's replies follows the avatar's language, like its replies.
UNTRAINED = {
    "en": (
        "Not trained yet: replies come from an untrained model and read like random text. ",
        "Train the avatar",
    ),
    "ru": (
        "Аватар ещё не обучен: ответы даёт необученная модель, они похожи на случайный текст. ",
        "Обучить аватар",
    ),
}
DEMO = {
    "en": "Demo mode: replies come from a tiny model trained only on this avatar's words, "
    "and the voice is not a clone of theirs.",
    "ru": "Демо-режим: ответы даёт крошечная модель, обученная только на словах этого аватара, "
    "а голос не клонирован.",
}


async def profile(req: Request, sess: dict[str, Any]) -> dict[str, Any]:
    """The deployment's profile; an unknown one (backend too old, worker silent) is not demo."""
    try:
        return await api(req, sess, "GET", "/utils/profile")
    except ApiError as exc:
        if exc.status == 401:
            raise
        return {"demo": False}


async def chat_notices(
    req: Request, sess: dict[str, Any], avatar: dict[str, Any]
) -> tuple[Any, ...]:
    """Notices shown above a chat with `avatar` (untrained warning, demo banner)."""
    language = avatar.get("language") if avatar.get("language") in UNTRAINED else "en"
    notices: list[Any] = []
    if not is_trained(avatar):
        text, link = UNTRAINED[language]
        notices.append(
            fh.Div(
                text,
                Nav(f"/avatars/{avatar['id']}/train", link),
                cls="notice untrained",
                id="untrained-notice",
                role="status",
                lang=language,
            )
        )
    if (await profile(req, sess)).get("demo"):
        notices.append(
            fh.Div(DEMO[language], cls="notice demo", id="demo-banner", role="note", lang=language)
        )
    return tuple(notices)

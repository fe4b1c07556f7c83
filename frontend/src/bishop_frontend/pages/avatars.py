"""The main page (avatar list) and the avatar page (thesis §6.1.3–6.1.4)."""

import uuid
from typing import Any

from bishop_contracts.languages import LANGUAGES
from fasthtml import common as fh
from starlette.datastructures import UploadFile
from starlette.requests import Request

from bishop_frontend.client import ApiError
from bishop_frontend.components import Errors, Field, Layout, Nav
from bishop_frontend.pages.common import api, relay, user
from bishop_frontend.states import Checklist, LifecycleBadge, is_trained

ar = fh.APIRouter()
# What the relay serves as an image; anything else as bytes to download.
PORTRAIT_TYPES = ("image/png", "image/jpeg", "image/webp")
PERSONA = [
    ("description", "Who they are"),
    ("personality", "Personality"),
    ("scenario", "Scenario"),
    ("greeting", "Greeting"),
    ("instructions", "Instructions"),
]


def Portrait(avatar: dict[str, Any], size: str = "small") -> Any:
    """The avatar's portrait, or its initial on a plain disc when it has none."""
    if avatar.get("has_portrait"):
        # A fresh address on the avatar's own page: a browser reuses an image it has already
        # shown under the same address, and this one may have just been replaced.
        fresh = f"?v={uuid.uuid4().hex[:8]}" if size == "large" else ""
        return fh.Img(
            src=f"/avatars/{avatar['id']}/portrait{fresh}",
            # In the list the name follows it: a screen reader need not say it twice.
            alt=f"Portrait of {avatar['name']}" if size == "large" else "",
            cls=f"portrait {size}",
        )
    return fh.Span(avatar["name"][:1].upper(), cls=f"portrait {size} initial", aria_hidden="true")


def AvatarRow(avatar: dict[str, Any]) -> Any:
    return fh.Li(
        fh.Div(
            Portrait(avatar),
            fh.Div(
                fh.Div(
                    Nav(f"/avatars/{avatar['id']}", avatar["name"]),
                    LifecycleBadge(avatar),
                    cls="row",
                ),
                fh.Div(avatar["description"][:140], cls="muted") if avatar["description"] else "",
                cls="grow",
            ),
            cls="row avatar-row",
        ),
        id=f"avatar-{avatar['id']}",
    )


def AvatarList(avatars: list[dict[str, Any]]) -> Any:
    if not avatars:
        return fh.Ul(
            fh.Li("No avatars yet: create the first one above.", cls="muted"),
            id="avatar-list",
            cls="plain",
        )
    return fh.Ul(*[AvatarRow(a) for a in avatars], id="avatar-list", cls="plain")


@ar("/avatars", methods=["get"])
async def avatars_page(req: Request, sess) -> Any:
    avatars = await api(req, sess, "GET", "/avatars")
    me = user(sess) or {}
    return Layout(
        "Avatars",
        fh.H1("Your avatars"),
        fh.P(f"{me.get('full_name') or 'Signed in'} · {me.get('email', '')}", cls="muted"),
        fh.Form(
            fh.Div(
                fh.Div(
                    Field("New avatar's name", "name", required=True, maxlength=255), cls="grow"
                ),
                fh.Button("Create avatar", type="submit", style="align-self:end"),
                cls="row",
            ),
            Errors(id="create-errors"),
            hx_post="/avatars",
            hx_target="#avatar-list",
            hx_swap="outerHTML",
            hx_on__after_request="if(event.detail.successful) this.reset()",
            cls="card",
        ),
        fh.Div(AvatarList(avatars), cls="card"),
        user=user(sess),
    )


@ar("/avatars", methods=["post"])
async def create_avatar(req: Request, sess, name: str = "") -> Any:
    await api(req, sess, "POST", "/avatars", json={"name": name.strip()})
    fh.add_toast(sess, "Avatar created successfully!", "success")
    return AvatarList(await api(req, sess, "GET", "/avatars"))


def LanguageSelect(current: str) -> Any:
    """The languages the voices speak; an older avatar's other code stays shown until changed."""
    choices = dict(LANGUAGES) if current in LANGUAGES else {current: current, **LANGUAGES}
    return fh.Div(
        fh.Label("Language", fr="language"),
        fh.Select(
            *[
                fh.Option(name, value=code, selected=code == current)
                for code, name in choices.items()
            ],
            name="language",
            id="language",
        ),
    )


def PersonaForm(avatar: dict[str, Any]) -> Any:
    return fh.Form(
        *[Field(label, name, avatar[name], kind="textarea") for name, label in PERSONA],
        LanguageSelect(avatar["language"]),
        fh.Div(fh.Button("Save persona", type="submit"), cls="row", style="margin-top:.8rem"),
        hx_put=f"/avatars/{avatar['id']}",
        hx_target="#avatar-head",
        hx_swap="outerHTML",
        cls="card",
        id="persona",
    )


def AvatarHead(avatar: dict[str, Any]) -> Any:
    failed = avatar.get("lifecycle") == "failed" and avatar.get("status_detail")
    return fh.Div(
        fh.Div(
            Portrait(avatar, "large"),
            fh.Div(
                fh.Div(fh.H1(avatar["name"], style="margin:0"), LifecycleBadge(avatar), cls="row"),
                fh.P(f"Training failed: {avatar['status_detail']}", cls="error") if failed else "",
                PortraitForm(avatar),
                cls="grow",
            ),
            cls="row avatar-head",
        ),
        fh.Form(
            fh.Div(
                fh.Div(
                    Field("Change name", "name", avatar["name"], required=True, maxlength=255),
                    cls="grow",
                ),
                fh.Button("Rename", type="submit", cls="secondary", style="align-self:end"),
                cls="row",
            ),
            hx_put=f"/avatars/{avatar['id']}",
            hx_target="#avatar-head",
            hx_swap="outerHTML",
        ),
        id="avatar-head",
        cls="card",
    )


def PortraitForm(avatar: dict[str, Any]) -> Any:
    """Choose a picture and it is uploaded; the head is redrawn with it."""
    aid = avatar["id"]
    remove = (
        fh.Button(
            "Remove portrait",
            type="button",
            cls="secondary",
            hx_delete=f"/avatars/{aid}/portrait",
            hx_target="#avatar-head",
            hx_swap="outerHTML",
        )
        if avatar.get("has_portrait")
        else ""
    )
    return fh.Form(
        fh.Label(
            "Change portrait" if avatar.get("has_portrait") else "Add a portrait",
            fh.Input(
                type="file",
                name="file",
                id="portrait-file",
                accept="image/png,image/jpeg,image/webp",
                hx_put=f"/avatars/{aid}/portrait",
                hx_trigger="change",
                hx_encoding="multipart/form-data",
                hx_target="#avatar-head",
                hx_swap="outerHTML",
            ),
            cls="button secondary portrait-pick",
        ),
        remove,
        fh.Span("PNG, JPEG or WebP, up to 2 MB", cls="muted"),
        cls="row portrait-form",
        id="portrait-form",
        hx_encoding="multipart/form-data",
    )


async def _chatted(req: Request, sess, aid: str) -> bool:
    return bool(await api(req, sess, "GET", f"/avatars/{aid}/chat"))


@ar("/avatars/{aid}", methods=["get"])
async def avatar_page(req: Request, sess, aid: str) -> Any:
    avatar = await api(req, sess, "GET", f"/avatars/{aid}")
    chatted = is_trained(avatar) and await _chatted(req, sess, aid)
    return Layout(
        avatar["name"],
        fh.P(Nav("/avatars", "← All avatars")),
        AvatarHead(avatar),
        # Until all three steps are done: a new avatar's way to its first conversation.
        "" if chatted else Checklist(avatar),
        fh.Div(
            Nav(f"/avatars/{aid}/train", "Train", cls="button"),
            Nav(f"/avatars/{aid}/chats", "Chat", cls="button"),
            fh.Button(
                "Delete",
                cls="danger",
                hx_delete=f"/avatars/{aid}",
                hx_target="#main",
                hx_select="#main",
                hx_swap="outerHTML",
                hx_confirm=f"Delete {avatar['name']} with all its chats and materials?",
            ),
            cls="row card",
        ),
        fh.H2("Persona"),
        PersonaForm(avatar),
        user=user(sess),
        lang=avatar["language"],
    )


@ar("/avatars/{aid}", methods=["put"])
async def update_avatar(req: Request, sess, aid: str) -> Any:
    form = await req.form()
    fields = {k: str(v) for k, v in form.items() if k in {"name", "language", *dict(PERSONA)}}
    try:
        avatar = await api(req, sess, "PUT", f"/avatars/{aid}", json=fields)
    except ApiError as exc:
        if exc.status == 404:
            raise
        fh.add_toast(sess, f"Failed to save: {exc.detail}", "error")
        avatar = await api(req, sess, "GET", f"/avatars/{aid}")
        return AvatarHead(avatar)
    fh.add_toast(sess, "Saved.", "success")
    return AvatarHead(avatar)


@ar("/avatars/{aid}", methods=["delete"])
async def delete_avatar(req: Request, sess, aid: str) -> Any:
    await api(req, sess, "DELETE", f"/avatars/{aid}")
    fh.add_toast(sess, "Avatar deleted.", "success")
    return fh.HtmxResponseHeaders(push_url="/avatars"), await avatars_page(req, sess)


@ar("/avatars/{aid}/portrait", methods=["get"])
async def portrait(req: Request, sess, aid: str) -> Any:
    return await relay(req, sess, f"/avatars/{aid}/portrait", playable=PORTRAIT_TYPES)


@ar("/avatars/{aid}/portrait", methods=["put"])
async def put_portrait(req: Request, sess, aid: str) -> Any:
    form = await req.form()  # within the portrait's limit (`limits.BodyLimit`)
    image = form.get("file")
    if not isinstance(image, UploadFile) or not image.filename:
        fh.add_toast(sess, "Choose an image first.", "error")
        return AvatarHead(await api(req, sess, "GET", f"/avatars/{aid}"))
    try:
        avatar = await api(
            req,
            sess,
            "PUT",
            f"/avatars/{aid}/portrait",
            files={"file": (image.filename, image.file, image.content_type or "image/png")},
        )
    except ApiError as exc:
        if exc.status == 404:
            raise
        fh.add_toast(sess, exc.detail, "error")
        avatar = await api(req, sess, "GET", f"/avatars/{aid}")
    else:
        fh.add_toast(sess, "Portrait saved.", "success")
    return AvatarHead(avatar)


@ar("/avatars/{aid}/portrait", methods=["delete"])
async def delete_portrait(req: Request, sess, aid: str) -> Any:
    await api(req, sess, "DELETE", f"/avatars/{aid}/portrait")
    fh.add_toast(sess, "Portrait removed.", "success")
    return AvatarHead(await api(req, sess, "GET", f"/avatars/{aid}"))

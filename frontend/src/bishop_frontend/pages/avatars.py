"""The main page (avatar list) and the avatar page (thesis §6.1.3–6.1.4)."""

from typing import Any

from bishop_contracts.languages import LANGUAGES
from fasthtml import common as fh
from starlette.requests import Request

from bishop_frontend.client import ApiError
from bishop_frontend.components import Errors, Field, Layout, Nav, StatusBadge
from bishop_frontend.pages.common import api, user

ar = fh.APIRouter()
PERSONA = [
    ("description", "Who they are"),
    ("personality", "Personality"),
    ("scenario", "Scenario"),
    ("greeting", "Greeting"),
    ("instructions", "Instructions"),
]


def AvatarRow(avatar: dict[str, Any]) -> Any:
    return fh.Li(
        fh.Div(
            Nav(f"/avatars/{avatar['id']}", avatar["name"]),
            StatusBadge(avatar["status"]),
            cls="row",
        ),
        fh.Div(avatar["description"][:140], cls="muted") if avatar["description"] else "",
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
    return fh.Div(
        fh.Div(fh.H1(avatar["name"], style="margin:0"), StatusBadge(avatar["status"]), cls="row"),
        fh.P(avatar["status_detail"], cls="error") if avatar.get("status_detail") else "",
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


@ar("/avatars/{aid}", methods=["get"])
async def avatar_page(req: Request, sess, aid: str) -> Any:
    avatar = await api(req, sess, "GET", f"/avatars/{aid}")
    return Layout(
        avatar["name"],
        fh.P(Nav("/avatars", "← All avatars")),
        AvatarHead(avatar),
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

"""The Train page's materials: upload, see them processed, preview, download, delete."""

from typing import Any

from fasthtml import common as fh
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse

from bishop_frontend.client import ApiError
from bishop_frontend.components import IdempotencyKey, StatusBadge, human_size
from bishop_frontend.pages.common import api, relay

ar = fh.APIRouter()
TYPES = {"basic": "Training material", "voice_synthesis": "Voice sample"}
VOICE_HINT = "about 15 s of the person's clear speech, used to clone the voice"
ACCEPTED = (
    "Texts, PDF and DOCX documents, Telegram chat exports (result.json or .zip), audio and "
    "video. Several at once; each is uploaded on its own."
)


def MaterialRow(aid: str, m: dict[str, Any]) -> Any:
    mid = m["id"]
    return fh.Li(
        fh.Div(
            fh.Div(
                fh.A(
                    m["filename"],
                    href=f"/avatars/{aid}/train/materials/{mid}/download",
                    download=m["filename"],
                ),
                fh.Span(
                    f" · {TYPES.get(m['type'], m['type'])} · {human_size(m['size'])}", cls="muted"
                ),
                cls="grow",
            ),
            StatusBadge(m["status"]),
            fh.Button(
                "Preview",
                cls="secondary",
                hx_get=f"/avatars/{aid}/train/materials/{mid}/preview",
                hx_target=f"#preview-{mid}",
            )
            if m["has_transcript"]
            else "",
            fh.Button(
                "Delete",
                cls="danger",
                hx_delete=f"/avatars/{aid}/train/materials/{mid}",
                hx_target=f"#material-{mid}",
                hx_swap="outerHTML",
                hx_confirm=f"Delete {m['filename']}?",
            ),
            cls="row",
        ),
        fh.P(m["status_detail"], cls="error") if m.get("status_detail") else "",
        SenderChoice(aid, m),
        # The voice sample plays here, so the user hears what the voice is cloned from.
        fh.Audio(
            controls=True,
            preload="none",
            src=f"/avatars/{aid}/train/materials/{mid}/download",
            aria_label=f"voice sample {m['filename']}",
        )
        if m["type"] == "voice_synthesis"
        else "",
        fh.Div(id=f"preview-{mid}", cls="muted"),
        id=f"material-{mid}",
        cls="material",
    )


def SenderChoice(aid: str, m: dict[str, Any]) -> Any:
    """A chat export's senders, to pick whose messages are the avatar's: open when the export
    found none by the avatar's name, folded away once it was read."""
    senders = m.get("senders") or []
    if not senders or m["status"] not in ("processed", "failed"):
        return ""
    mid = m["id"]
    # Nothing preselected: a wrong guess would make the other person's lines the answers.
    options = [
        fh.Label(
            fh.Input(
                type="radio",
                name="sender",
                value=s["name"],
                checked=s["name"] == m.get("sender"),
                required=True,
            ),
            fh.Span(s["name"], cls="sender-name"),
            fh.Span(f"{s['messages']} message{'s' if s['messages'] != 1 else ''}", cls="muted"),
            cls="sender",
        )
        for s in senders
    ]
    form = fh.Form(
        fh.Fieldset(
            fh.Legend("Who in this chat is the avatar? Their messages become its answers."),
            *options,
            cls="senders-list",
        ),
        fh.Button("Use this person", type="submit"),
        hx_post=f"/avatars/{aid}/train/materials/{mid}/reprocess",
        hx_target="#materials",
        hx_swap="outerHTML",
        cls="senders",
        id=f"senders-{mid}",
    )
    if m["status"] == "failed":
        return form
    who = m.get("sender") or "the avatar's name"
    return fh.Details(fh.Summary(f"Answers are the messages of {who}; change"), form)


def Materials(aid: str, materials: list[dict[str, Any]]) -> Any:
    waiting = any(m["status"] in ("uploaded", "processing") for m in materials)
    rows = [MaterialRow(aid, m) for m in materials] or [fh.Li("No materials yet.", cls="muted")]
    # While any material is being processed, the list refreshes itself.
    refresh = (
        {
            "hx_get": f"/avatars/{aid}/train/materials",
            "hx_trigger": "every 2s",
            "hx_swap": "outerHTML",
        }
        if waiting
        else {}
    )
    return fh.Ul(*rows, id="materials", cls="plain", **refresh)


def UploadForm(aid: str) -> Any:
    """A drop zone that also opens the file picker. With scripts, each file is queued in a row
    of its own and sent on its own (materials.js); without, the form posts them together."""
    return fh.Form(
        fh.Label(
            fh.Span(fh.Strong("Drop files here"), " or ", fh.U("choose files")),
            fh.Span(ACCEPTED, cls="muted"),
            fh.Input(type="file", name="file", id="file", multiple=True),
            fr="file",
            id="dropzone",
            cls="dropzone",
        ),
        # Without scripts there are no rows to choose in: one choice for the whole upload.
        fh.Noscript(
            fh.Fieldset(
                fh.Legend("These files are"),
                *[
                    fh.Label(
                        fh.Input(type="radio", name="type", value=value, checked=value == "basic"),
                        f" {label}" + (f" ({VOICE_HINT})" if value == "voice_synthesis" else ""),
                    )
                    for value, label in TYPES.items()
                ],
            )
        ),
        fh.Ul(id="upload-queue", cls="plain upload-queue", aria_live="polite"),
        IdempotencyKey("upload"),
        fh.Div(
            fh.Button("Upload", type="submit", id="upload-button"),
            fh.Button("Clear", type="button", cls="secondary", id="upload-clear", hidden=True),
            cls="row upload-actions",
        ),
        action=f"/avatars/{aid}/train/upload",
        method="post",
        enctype="multipart/form-data",
        id="upload-form",
        cls="card upload-form",
        data_materials=f"/avatars/{aid}/train/materials",
        data_voice_hint=VOICE_HINT,
    )


@ar("/avatars/{aid}/train/materials", methods=["get"])
async def materials_list(req: Request, sess, aid: str) -> Any:
    return Materials(aid, await api(req, sess, "GET", f"/avatars/{aid}/train/materials"))


@ar("/avatars/{aid}/train/upload", methods=["post"])
async def upload(req: Request, sess, aid: str) -> Any:
    """Files from the Train page: one per request from its script (answered in JSON, for the
    file's row), or all of the plain form's at once without scripts."""
    form = await req.form()  # read by then, within the upload limit (`limits.BodyLimit`)
    files = [f for f in form.getlist("file") if isinstance(f, UploadFile) and f.filename]
    material_type = str(form.get("type", "basic"))
    key = str(form.get("idempotency_key", ""))
    try:
        if req.headers.get("X-Requested-With") == "XMLHttpRequest":
            return await _upload_one(req, sess, aid, files, material_type, key)
        try:
            await _store(req, sess, aid, files, material_type, key)
            fh.add_toast(sess, f"Uploaded {len(files)} file(s).", "success")
        except ApiError as exc:
            if exc.status == 404:
                raise
            fh.add_toast(sess, f"File upload failed! {_reason(exc)}", "error")
    finally:
        await form.close()
    if not req.headers.get("HX-Request"):
        return RedirectResponse(f"/avatars/{aid}/train", status_code=303)
    return await materials_list(req, sess, aid), IdempotencyKey("upload", swap=True)


async def _upload_one(
    req: Request, sess, aid: str, files: list[UploadFile], material_type: str, key: str
) -> JSONResponse:
    if len(files) != 1:
        return JSONResponse({"detail": "Send one file per request."}, status_code=400)
    try:
        stored = await _store(req, sess, aid, files, material_type, key)
    except ApiError as exc:
        return JSONResponse({"detail": _reason(exc)}, status_code=exc.status)
    return JSONResponse({"uploaded": [m["filename"] for m in stored]}, status_code=201)


async def _store(
    req: Request, sess, aid: str, files: list[UploadFile], material_type: str, key: str
) -> list[dict[str, Any]]:
    if not files:
        raise ApiError(422, "Choose at least one file.")
    return await api(
        req,
        sess,
        "POST",
        f"/avatars/{aid}/train/",
        idempotency_key=key,
        data={"type": material_type},
        files=[
            ("file", (f.filename, f.file, f.content_type or "application/octet-stream"))
            for f in files
        ],
    )


def _reason(exc: ApiError) -> str:
    """The backend's refusal as the user reads it: a field's name is no help to them."""
    return exc.detail.removeprefix("file: ").removeprefix("type: ").removeprefix("sender: ")


@ar("/avatars/{aid}/train/materials/{mid}/reprocess", methods=["post"])
async def reprocess(req: Request, sess, aid: str, mid: str) -> Any:
    form = await req.form()
    sender = str(form.get("sender", ""))
    try:
        await api(
            req,
            sess,
            "POST",
            f"/avatars/{aid}/train/materials/{mid}/reprocess",
            json={"sender": sender},
        )
        fh.add_toast(sess, f"Reading the chat again with {sender} as the avatar.", "success")
    except ApiError as exc:
        if exc.status == 404:
            raise
        fh.add_toast(sess, f"The chat could not be read again: {_reason(exc)}", "error")
    return await materials_list(req, sess, aid)


@ar("/avatars/{aid}/train/materials/{mid}", methods=["delete"])
async def delete_material(req: Request, sess, aid: str, mid: str) -> Any:
    await api(req, sess, "DELETE", f"/avatars/{aid}/train/materials/{mid}")
    fh.add_toast(sess, "Material deleted.", "success")
    return ""


@ar("/avatars/{aid}/train/materials/{mid}/preview", methods=["get"])
async def preview(req: Request, sess, aid: str, mid: str) -> Any:
    transcript = await api(req, sess, "GET", f"/avatars/{aid}/train/materials/{mid}/transcript")
    text = transcript.get("text", "")
    return fh.P(text[:400] + ("…" if len(text) > 400 else ""))


@ar("/avatars/{aid}/train/materials/{mid}/download", methods=["get"])
async def download(req: Request, sess, aid: str, mid: str) -> Any:
    path = f"/avatars/{aid}/train/materials/{mid}/download"
    return await relay(req, sess, path, playable=("audio/", "video/"))

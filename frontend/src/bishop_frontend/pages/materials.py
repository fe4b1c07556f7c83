"""The Train page's materials: upload, see them processed, preview, download, delete."""

from typing import Any

from fasthtml import common as fh
from starlette.datastructures import UploadFile
from starlette.requests import Request

from bishop_frontend.client import ApiError
from bishop_frontend.components import IdempotencyKey, StatusBadge, human_size
from bishop_frontend.pages.common import api, relay

ar = fh.APIRouter()
TYPES = {"basic": "Extract text", "voice_synthesis": "Voice synthesis"}
# htmx reports upload progress on the form; the bar follows it.
UPLOAD_PROGRESS = (
    "htmx.on('#upload-form', 'htmx:xhr:progress', function(e) {"
    " if (e.detail.lengthComputable) htmx.find('#upload-progress')"
    ".setAttribute('value', e.detail.loaded / e.detail.total * 100) });"
)


RESET_UPLOAD = "this.reset(); htmx.find('#upload-progress').setAttribute('value', 0)"


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
    )


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
    return (
        fh.Form(
            fh.Label("Material type", fr="type"),
            fh.Select(
                *[fh.Option(label, value=value) for value, label in TYPES.items()],
                name="type",
                id="type",
            ),
            fh.Label("Files (several at once)", fr="file"),
            fh.Input(type="file", name="file", id="file", multiple=True, required=True),
            IdempotencyKey("upload"),
            fh.Progress(value="0", max="100", id="upload-progress", aria_label="upload progress"),
            fh.Div(fh.Button("Upload", type="submit"), cls="row", style="margin-top:.5rem"),
            hx_post=f"/avatars/{aid}/train/upload",
            hx_encoding="multipart/form-data",
            hx_target="#materials",
            hx_swap="outerHTML",
            id="upload-form",
            cls="card",
            hx_on__after_request=RESET_UPLOAD,
        ),
        fh.Script(UPLOAD_PROGRESS),
    )


@ar("/avatars/{aid}/train/materials", methods=["get"])
async def materials_list(req: Request, sess, aid: str) -> Any:
    return Materials(aid, await api(req, sess, "GET", f"/avatars/{aid}/train/materials"))


@ar("/avatars/{aid}/train/upload", methods=["post"])
async def upload(req: Request, sess, aid: str) -> Any:
    form = await req.form()  # read by then, within the upload limit (`limits.BodyLimit`)
    files = [f for f in form.getlist("file") if isinstance(f, UploadFile) and f.filename]
    try:
        await api(
            req,
            sess,
            "POST",
            f"/avatars/{aid}/train/",
            idempotency_key=str(form.get("idempotency_key", "")),
            data={"type": str(form.get("type", "basic"))},
            files=[
                ("file", (f.filename, f.file, f.content_type or "application/octet-stream"))
                for f in files
            ],
        )
        fh.add_toast(sess, f"Uploaded {len(files)} file(s).", "success")
    except ApiError as exc:
        if exc.status == 404:
            raise
        fh.add_toast(sess, f"File upload failed! {exc.detail}", "error")
    finally:
        await form.close()
    return await materials_list(req, sess, aid), IdempotencyKey("upload", swap=True)


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

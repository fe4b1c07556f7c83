"""The train page: upload, see materials processed, train, follow progress, pick a version."""

import json
from typing import Any

from fasthtml import common as fh
from starlette.datastructures import UploadFile
from starlette.requests import Request

from bishop_frontend.client import ApiError
from bishop_frontend.components import (
    IdempotencyKey,
    Layout,
    LossChart,
    Nav,
    StatusBadge,
    human_size,
)
from bishop_frontend.pages.common import api, relay, user

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


def TrainStatus(aid: str, status: dict[str, Any]) -> Any:
    run = status["run"]
    state = status["avatar_status"]
    busy = state in ("queued", "training")
    parts: list[Any] = [fh.Div(fh.Strong("Status: "), StatusBadge(state), cls="row")]
    if status.get("status_detail"):
        parts.append(fh.P(status["status_detail"], cls="error"))
    if run:
        total = run["total_steps"] or 0
        parts.append(
            fh.Progress(
                value=str(run["step"]), max=str(max(total, 1)), aria_label="training progress"
            )
        )
        facts = [f"step {run['step']} of {total or '?'}"]
        if run.get("loss") is not None:
            facts.append(f"loss {run['loss']:.3f}")
        if run.get("eval_loss") is not None:
            facts.append(f"validation loss {run['eval_loss']:.3f}")
        if busy and run.get("eta_seconds") is not None:
            facts.append(f"about {int(run['eta_seconds'])} s left")
        parts += [fh.P(" · ".join(facts), cls="muted"), LossChart(run.get("loss_history", []))]
    buttons = fh.Div(
        fh.Button(
            "Start Training",
            hx_post=f"/avatars/{aid}/train/start",
            hx_target="#train-status",
            hx_swap="outerHTML",
            disabled=busy,
        ),
        fh.Button(
            "Stop Training",
            cls="danger",
            hx_post=f"/avatars/{aid}/train/stop",
            hx_target="#train-status",
            hx_swap="outerHTML",
            disabled=not busy,
            hx_confirm="Stop training? The progress of this run is lost.",
        ),
        cls="row",
    )
    poll = (
        {"hx_get": f"/avatars/{aid}/train/status", "hx_trigger": "every 2s", "hx_swap": "outerHTML"}
        if busy
        else {}
    )
    return fh.Div(*parts, buttons, id="train-status", cls="card", **poll)


def Versions(aid: str, versions: list[dict[str, Any]]) -> Any:
    if not versions:
        return fh.Div(fh.P("No trained versions yet.", cls="muted"), id="versions", cls="card")
    rows = []
    for v in reversed(versions):
        metric = v["metrics"].get("eval_loss") or v["metrics"].get("train_loss")
        label = f"Version {v['number']}" + (f" · loss {metric:.3f}" if metric is not None else "")
        action = (
            fh.Span("active", cls="badge available")
            if v["active"]
            else fh.Button(
                "Use this version",
                cls="secondary",
                hx_put=f"/avatars/{aid}/versions/active",
                hx_vals=json.dumps({"version_id": v["id"]}),
                hx_target="#versions",
                hx_swap="outerHTML",
            )
        )
        rows.append(fh.Li(fh.Div(fh.Span(label, cls="grow"), action, cls="row")))
    return fh.Div(fh.Ul(*rows, cls="plain"), id="versions", cls="card")


@ar("/avatars/{aid}/train", methods=["get"])
async def train_page(req: Request, sess, aid: str) -> Any:
    avatar = await api(req, sess, "GET", f"/avatars/{aid}")
    materials = await api(req, sess, "GET", f"/avatars/{aid}/train/materials")
    status = await api(req, sess, "GET", f"/avatars/{aid}/train/status")
    versions = await api(req, sess, "GET", f"/avatars/{aid}/versions")
    return Layout(
        f"Train {avatar['name']}",
        fh.P(Nav(f"/avatars/{aid}", f"← {avatar['name']}")),
        fh.H1(f"Train {avatar['name']}"),
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
        fh.H2("Materials"),
        fh.Div(Materials(aid, materials), cls="card"),
        fh.H2("Training"),
        TrainStatus(aid, status),
        fh.H2("Versions"),
        Versions(aid, versions),
        user=user(sess),
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


async def _status(req: Request, sess, aid: str) -> Any:
    return TrainStatus(aid, await api(req, sess, "GET", f"/avatars/{aid}/train/status"))


@ar("/avatars/{aid}/train/status", methods=["get"])
async def status(req: Request, sess, aid: str) -> Any:
    current = await api(req, sess, "GET", f"/avatars/{aid}/train/status")
    if current["avatar_status"] in ("queued", "training"):
        return TrainStatus(aid, current)
    # The run just ended: the version list may have grown.
    versions = await api(req, sess, "GET", f"/avatars/{aid}/versions")
    return TrainStatus(aid, current), fh.Div(
        Versions(aid, versions), hx_swap_oob="outerHTML:#versions"
    )


@ar("/avatars/{aid}/train/start", methods=["post"])
async def start(req: Request, sess, aid: str) -> Any:
    return await _training_action(req, sess, aid, "start", "Training started.")


@ar("/avatars/{aid}/train/stop", methods=["post"])
async def stop(req: Request, sess, aid: str) -> Any:
    return await _training_action(req, sess, aid, "stop", "Training stopped.")


async def _training_action(req: Request, sess, aid: str, action: str, done: str) -> Any:
    try:
        await api(req, sess, "POST", f"/avatars/{aid}/train/{action}")
        fh.add_toast(sess, done, "success")
    except ApiError as exc:
        if exc.status == 404:
            raise
        fh.add_toast(sess, exc.detail, "error")
    return await _status(req, sess, aid)


@ar("/avatars/{aid}/versions/active", methods=["put"])
async def activate(req: Request, sess, aid: str, version_id: str = "") -> Any:
    await api(req, sess, "PUT", f"/avatars/{aid}/versions/active", json={"version_id": version_id})
    fh.add_toast(sess, "Version switched.", "success")
    return Versions(aid, await api(req, sess, "GET", f"/avatars/{aid}/versions"))

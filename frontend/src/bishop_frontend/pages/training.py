"""The train page: its materials (see `materials`), training, its progress, the versions."""

import json
from datetime import UTC, datetime
from typing import Any

from fasthtml import common as fh
from starlette.requests import Request

from bishop_frontend.client import ApiError
from bishop_frontend.components import (
    Layout,
    LossChart,
    Nav,
)
from bishop_frontend.pages.common import api, user
from bishop_frontend.pages.materials import Materials, UploadForm
from bishop_frontend.states import LifecycleBadge

ar = fh.APIRouter()


# What an active run is doing before its first step, from the backend's `phase`.
PHASES = {
    "waiting": "Waiting for the text worker to pick the run up…",
    "preparing": "Preparing data…",
    "loading": "Loading the model…",
}
RUN_ENDINGS = {
    "finished": "The last run finished.",
    "stopped": "Stopped: the last run was stopped before it finished; no version was made.",
    "failed": "The last run failed.",
}


def _run_facts(run: dict[str, Any], busy: bool) -> list[str]:
    """Steps and losses, said only when known (never "step 0 of ?")."""
    facts = []
    if run["step"] and run["total_steps"]:
        facts.append(f"step {run['step']} of {run['total_steps']}")
    if run.get("loss") is not None:
        facts.append(f"loss {run['loss']:.3f}")
    if run.get("eval_loss") is not None:
        facts.append(f"validation loss {run['eval_loss']:.3f}")
    if busy and run["step"] and run.get("eta_seconds") is not None:
        facts.append(f"about {int(run['eta_seconds'])} s left")
    return facts


def TrainStatus(aid: str, status: dict[str, Any], avatar: dict[str, Any]) -> Any:
    """The avatar's lifecycle, what the current run is doing, its progress and loss chart."""
    run = status["run"]
    busy = status["avatar_status"] in ("queued", "training")
    parts: list[Any] = [fh.Div(fh.Strong("Status: "), LifecycleBadge(avatar), cls="row")]
    if status.get("status_detail"):
        parts.append(fh.P(status["status_detail"], cls="error"))
    if busy and status.get("phase") in PHASES:
        parts.append(fh.P(PHASES[status["phase"]], cls="phase", id="train-phase"))
    elif not busy and run and run["status"] in RUN_ENDINGS and run["status"] != "failed":
        parts.append(fh.P(RUN_ENDINGS[run["status"]], cls="muted", id="train-ending"))
    if run and (busy or run["loss_history"]):
        if busy and run["step"] and run["total_steps"]:
            parts.append(
                fh.Progress(
                    value=str(run["step"]),
                    max=str(run["total_steps"]),
                    aria_label="training progress",
                )
            )
        elif busy:
            parts.append(fh.Progress(aria_label="training is starting"))  # indeterminate
        if facts := _run_facts(run, busy):
            parts.append(fh.P(" · ".join(facts), cls="muted", id="train-facts"))
        parts.append(LossChart(run.get("loss_history", [])))
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


def _when(stamp: str) -> str:
    """A version's date as people read it (UTC: the server does not know the reader's zone)."""
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return stamp
    return moment.strftime("%-d %b %Y, %H:%M UTC")


def _trained_on(v: dict[str, Any]) -> str:
    names = [m["filename"] for m in v.get("materials", [])]
    count = v.get("material_count", len(names))
    if not count:
        return "no materials recorded"
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    gone = count - len(names)
    deleted = f"{gone} deleted since" if gone else ""
    files = "file" if count == 1 else "files"
    return f"{count} {files}: " + ", ".join(x for x in (shown, deleted) if x)


def _losses(metrics: dict[str, float]) -> str:
    parts = []
    if metrics.get("train_loss") is not None:
        parts.append(f"train loss {metrics['train_loss']:.3f}")
    if metrics.get("eval_loss") is not None:
        parts.append(f"validation loss {metrics['eval_loss']:.3f}")
    return " · ".join(parts) or "no loss recorded"


def NoteForm(aid: str, v: dict[str, Any]) -> Any:
    return fh.Form(
        fh.Label("Note", fr=f"note-{v['id']}", cls="visually-hidden"),
        fh.Input(
            type="text",
            name="note",
            id=f"note-{v['id']}",
            value=v.get("note", ""),
            maxlength=500,
            placeholder="Add a note: what was different in this version?",
        ),
        fh.Button("Save note", type="submit", cls="secondary"),
        hx_patch=f"/avatars/{aid}/versions/{v['id']}",
        hx_target=f"#version-{v['id']}",
        hx_swap="outerHTML",
        cls="row note-form",
    )


def VersionRow(aid: str, v: dict[str, Any]) -> Any:
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
    return fh.Li(
        fh.Div(
            fh.Strong(f"Version {v['number']}"),
            fh.Time(_when(v["created_at"]), datetime=v["created_at"], cls="muted"),
            fh.Span(cls="grow"),
            action,
            cls="row",
        ),
        fh.Div(_losses(v.get("metrics", {})), cls="muted version-losses"),
        fh.Div(f"Trained on {_trained_on(v)}", cls="muted version-materials"),
        fh.P(v["note"], cls="version-note") if v.get("note") else "",
        NoteForm(aid, v),
        id=f"version-{v['id']}",
        cls="version",
    )


def Versions(aid: str, versions: list[dict[str, Any]]) -> Any:
    if not versions:
        return fh.Div(fh.P("No trained versions yet.", cls="muted"), id="versions", cls="card")
    rows = [VersionRow(aid, v) for v in reversed(versions)]
    return fh.Div(fh.Ul(*rows, cls="plain versions"), id="versions", cls="card")


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
        UploadForm(aid),
        fh.H2("Materials"),
        fh.Div(Materials(aid, materials), cls="card"),
        fh.H2("Training"),
        TrainStatus(aid, status, avatar),
        fh.H2("Versions"),
        Versions(aid, versions),
        user=user(sess),
        lang=avatar["language"],
    )


async def _status(req: Request, sess, aid: str) -> Any:
    status = await api(req, sess, "GET", f"/avatars/{aid}/train/status")
    return TrainStatus(aid, status, await api(req, sess, "GET", f"/avatars/{aid}"))


@ar("/avatars/{aid}/train/status", methods=["get"])
async def status(req: Request, sess, aid: str) -> Any:
    current = await api(req, sess, "GET", f"/avatars/{aid}/train/status")
    avatar = await api(req, sess, "GET", f"/avatars/{aid}")
    if current["avatar_status"] in ("queued", "training"):
        return TrainStatus(aid, current, avatar)
    # The run just ended: the version list may have grown.
    versions = await api(req, sess, "GET", f"/avatars/{aid}/versions")
    return TrainStatus(aid, current, avatar), fh.Div(
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
    # The status names the active version: it changes with it.
    return Versions(aid, await api(req, sess, "GET", f"/avatars/{aid}/versions")), fh.Div(
        await _status(req, sess, aid), hx_swap_oob="outerHTML:#train-status"
    )


@ar("/avatars/{aid}/versions/{vid}", methods=["patch"])
async def note(req: Request, sess, aid: str, vid: str, note: str = "") -> Any:
    try:
        version = await api(
            req, sess, "PATCH", f"/avatars/{aid}/versions/{vid}", json={"note": note}
        )
    except ApiError as exc:
        if exc.status == 404:
            raise
        versions = await api(req, sess, "GET", f"/avatars/{aid}/versions")
        version = next((v for v in versions if v["id"] == vid), None)
        if version is None:
            raise
        fh.add_toast(sess, f"The note was not saved: {exc.detail}", "error")
    else:
        fh.add_toast(sess, "Note saved.", "success")
    return VersionRow(aid, version)

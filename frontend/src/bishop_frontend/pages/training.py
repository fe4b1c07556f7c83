"""The train page: its materials (see `materials`), training, its progress, the versions."""

import json
from typing import Any

from fasthtml import common as fh
from starlette.requests import Request

from bishop_frontend.client import ApiError
from bishop_frontend.components import (
    Layout,
    LossChart,
    Nav,
    StatusBadge,
)
from bishop_frontend.pages.common import api, user
from bishop_frontend.pages.materials import Materials, UploadForm

ar = fh.APIRouter()


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
        UploadForm(aid),
        fh.H2("Materials"),
        fh.Div(Materials(aid, materials), cls="card"),
        fh.H2("Training"),
        TrainStatus(aid, status),
        fh.H2("Versions"),
        Versions(aid, versions),
        user=user(sess),
    )


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

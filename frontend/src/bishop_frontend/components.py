"""Page layout and widgets: plain functions returning FT."""

import uuid
from typing import Any

from fasthtml import common as fh
from fasthtml import svg

from bishop_frontend.security import page_token

STATUS_LABELS = {
    "queued": "Queued",
    "training": "Training",
    "available": "Ready",
    "failed": "Failed",
}


def Layout(title: str, *content: Any, user: dict[str, Any] | None = None) -> tuple[Any, ...]:
    """A page: on a full load it is wrapped in the document; on htmx requests only #main changes."""
    return (
        fh.Title(f"{title} · Bishop"),
        fh.Meta(name="csrf-token", content=page_token()),
        TopBar(user),
        fh.Main(*content, id="main"),
    )


def TopBar(user: dict[str, Any] | None) -> Any:
    right = (
        fh.Div(
            fh.Span(f"{user.get('full_name') or ''} · {user['email']}", cls="who"),
            fh.Button("Sign Out", hx_post="/logout", cls="secondary"),
            cls="row",
        )
        if user
        else fh.Div(
            fh.A("Login", href="/login", cls="button secondary"),
            fh.A("Signup", href="/signup", cls="button"),
            cls="row",
        )
    )
    return fh.Header(
        fh.A("Bishop", href="/avatars" if user else "/", cls="brand"),
        right,
        cls="top",
        id="topbar",
        hx_swap_oob="true",
    )


def Nav(href: str, label: str, cls: str = "") -> Any:
    """An in-app link: an htmx swap of #main, with the address bar kept right."""
    return fh.A(
        label,
        href=href,
        hx_get=href,
        hx_target="#main",
        hx_select="#main",
        hx_swap="outerHTML",
        hx_push_url="true",
        cls=cls,
    )


def Field(label: str, name: str, value: str = "", kind: str = "text", **attrs: Any) -> Any:
    control = (
        fh.Textarea(value, name=name, id=name, rows=3, **attrs)
        if kind == "textarea"
        else fh.Input(type=kind, name=name, id=name, value=value, **attrs)
    )
    return fh.Div(fh.Label(label, fr=name), control)


def Errors(*messages: str, id: str = "form-errors") -> Any:
    return fh.Div(*[fh.P(m, cls="error", role="alert") for m in messages], id=id)


def StatusBadge(status: str) -> Any:
    return fh.Span(STATUS_LABELS.get(status, status.capitalize()), cls=f"badge {status}")


def LossChart(points: list[list[float]]) -> Any:
    """Training loss over steps as a small inline SVG."""
    if len(points) < 2:
        return fh.P("The loss chart appears after a few steps.", cls="muted")
    steps = [p[0] for p in points]
    losses = [p[1] for p in points]
    x0, x1 = min(steps), max(steps) or 1
    y0, y1 = min(losses), max(losses)
    span_x, span_y = (x1 - x0) or 1, (y1 - y0) or 1
    coords = " ".join(
        f"{(s - x0) / span_x * 290 + 5:.1f},{(1 - (v - y0) / span_y) * 100 + 10:.1f}"
        for s, v in points
    )
    return svg.Svg(
        svg.Polyline(points=coords, fill="none", stroke="#3b5bdb", stroke_width="2"),
        svg.Text(f"{y1:.2f}", x="4", y="10", font_size="9", fill="#667085"),
        svg.Text(f"{y0:.2f}", x="4", y="118", font_size="9", fill="#667085"),
        viewBox="0 0 300 120",
        cls="chart",
        role="img",
        aria_label=f"loss from {losses[0]:.2f} to {losses[-1]:.2f}",
    )


def human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return f"{size:.1f} TB"


def IdempotencyKey(form: str, *, swap: bool = False) -> Any:
    """A fresh key for the next submission of `form`: a resend after a lost answer carries the
    same key, so the backend creates nothing twice. Each answer swaps in a new one."""
    return fh.Input(
        type="hidden",
        name="idempotency_key",
        value=uuid.uuid4().hex,
        id=f"{form}-idempotency-key",
        hx_swap_oob="true" if swap else None,
    )

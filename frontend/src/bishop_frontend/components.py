"""Page layout and widgets: plain functions returning FT."""

import itertools
import math
import uuid
from dataclasses import dataclass
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


def Layout(
    title: str,
    *content: Any,
    user: dict[str, Any] | None = None,
    lang: str = "en",
    skip_link: bool = True,
) -> tuple[Any, ...]:
    """A page: on a full load it is wrapped in the document; on htmx requests only #main changes.
    `lang`: the language of the page's content (an avatar's pages speak the avatar's); the
    document takes it from #main (see bishop.js). `skip_link`: off where the page opens with
    focus on its one control and a skip link would only stand in the way (a chat's box)."""
    return (
        fh.Title(f"{title} · Bishop"),
        fh.Meta(name="csrf-token", content=page_token()),
        fh.A(
            "Skip to content",
            href="#main",
            cls="skip",
            id="skip-link",
            hidden=not skip_link,
            hx_swap_oob="true",
        ),
        TopBar(user),
        fh.Main(*content, id="main", lang=lang, tabindex="-1"),
    )


def TopBar(user: dict[str, Any] | None) -> Any:
    """The brand and one account menu: two stops for the keyboard before a page's content."""
    theme = fh.Button(
        "Dark mode",
        type="button",
        cls="secondary theme-toggle",
        aria_pressed="false",
        onclick="bishopToggleTheme(this)",
    )
    right = (
        fh.Details(
            fh.Summary(user.get("full_name") or user["email"], cls="button secondary"),
            fh.Div(
                fh.Span(f"{user.get('full_name') or ''} · {user['email']}", cls="who"),
                theme,
                fh.Button("Sign Out", hx_post="/logout", cls="secondary"),
                cls="account-menu",
            ),
            cls="account",
        )
        if user
        else fh.Div(
            theme,
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


def StatusBadge(status: str, label: str | None = None, cls: str = "") -> Any:
    text = label or STATUS_LABELS.get(status, status.replace("_", " ").capitalize())
    return fh.Span(text, cls=f"badge {cls} {status}".replace("  ", " "))


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    """Round values spread over [low, high] for an axis."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _label(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.3g}"


# The plot's box inside the chart, in percent of its width and height: all coordinates are
# percentages, so the chart fills its card at any width while its text keeps its size.
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 11.0, 97.0, 10.0, 84.0


@dataclass(frozen=True)
class _Scale:
    x0: float
    x1: float
    y0: float
    y1: float

    def x(self, step: float) -> str:
        share = (step - self.x0) / (self.x1 - self.x0)
        return f"{PLOT_LEFT + share * (PLOT_RIGHT - PLOT_LEFT):.2f}%"

    def y(self, value: float) -> str:
        share = (value - self.y0) / (self.y1 - self.y0)
        return f"{PLOT_BOTTOM - share * (PLOT_BOTTOM - PLOT_TOP):.2f}%"


def _series(scale: _Scale, pairs: list[tuple[float, float]], kind: str) -> list[Any]:
    """A line through the points and a dot on each (with its value on hover)."""
    x, y = scale.x, scale.y
    lines = [
        svg.Line(x1=x(a), y1=y(va), x2=x(b), y2=y(vb), cls=f"line {kind}")
        for (a, va), (b, vb) in itertools.pairwise(pairs)
    ]
    dots = [
        svg.ft_svg(
            "circle",
            svg.Title(f"step {s:.0f}: {v:.3f}"),
            r="3.5",
            cx=x(s),
            cy=y(v),
            cls=f"point {kind}",
            data_step=f"{s:.0f}",
        )
        for s, v in pairs
    ]
    return lines + dots


def _axes(scale: _Scale, x_ticks: list[float], y_ticks: list[float]) -> list[Any]:
    left, right, top, bottom = (f"{v}%" for v in (PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM))
    parts = [
        svg.Line(x1=left, y1=bottom, x2=right, y2=bottom, cls="axis x-axis"),
        svg.Line(x1=left, y1=top, x2=left, y2=bottom, cls="axis y-axis"),
        svg.Text("step", x=right, y="99%", cls="axis-label", text_anchor="end"),
        svg.Text("loss", x=left, y=f"{PLOT_TOP - 4}%", cls="axis-label", text_anchor="middle"),
    ]
    for t in x_ticks:
        parts += [
            svg.Line(x1=scale.x(t), y1=bottom, x2=scale.x(t), y2=f"{PLOT_BOTTOM + 2}%", cls="tick"),
            svg.Text(
                _label(t),
                x=scale.x(t),
                y=f"{PLOT_BOTTOM + 8}%",
                cls="tick-label x-tick",
                text_anchor="middle",
            ),
        ]
    for t in y_ticks:
        parts += [
            svg.Line(x1=left, y1=scale.y(t), x2=right, y2=scale.y(t), cls="grid"),
            svg.Text(
                _label(t),
                x=f"{PLOT_LEFT - 1.5}%",
                y=scale.y(t),
                cls="tick-label y-tick",
                text_anchor="end",
                dominant_baseline="middle",
            ),
        ]
    return parts


def LossChart(points: list[list[float]]) -> Any:
    """The loss at every reported step (train, and validation where logged), with axes; it
    fills its card's width. A point is `[step, loss]` or `[step, loss, validation loss]`."""
    if not points:
        return fh.P("The loss chart appears after the first step.", cls="muted", id="loss-chart")
    train = [(p[0], p[1]) for p in points]
    evals = [(p[0], p[2]) for p in points if len(p) > 2]
    values = [v for _, v in train + evals]
    last_step = max(s for s, _ in train)
    x_ticks = [t for t in _ticks(0, last_step, 5) if t == int(t)]
    y_ticks = _ticks(min(values), max(values))
    y0, y1 = min(values + y_ticks), max(values + y_ticks)
    if y1 - y0 < 1e-9:  # a flat loss still gets a y range
        y0, y1 = y0 - 0.5, y1 + 0.5
    scale = _Scale(0.0, max(last_step, x_ticks[-1], 1), y0, y1)
    legend = fh.Div(
        fh.Span(fh.Span(cls="swatch train"), "train loss"),
        fh.Span(fh.Span(cls="swatch eval"), "validation loss") if evals else "",
        cls="chart-legend row",
    )
    return fh.Figure(
        svg.Svg(
            *_axes(scale, x_ticks, y_ticks),
            *_series(scale, train, "train"),
            *_series(scale, evals, "eval"),
            cls="loss-chart",
            role="img",
            aria_label=f"loss over {len(train)} steps, "
            f"from {train[0][1]:.2f} to {train[-1][1]:.2f}",
            xmlns="http://www.w3.org/2000/svg",
        ),
        legend,
        cls="chart-box",
        id="loss-chart",
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

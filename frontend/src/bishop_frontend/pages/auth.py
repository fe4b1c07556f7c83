"""Landing, signup, login, sign out (thesis §6.1.1–6.1.2)."""

from typing import Any

from fasthtml import common as fh
from starlette.requests import Request
from starlette.responses import RedirectResponse

from bishop_frontend.client import ApiError
from bishop_frontend.components import Errors, Field, Layout
from bishop_frontend.pages.common import backend, user

ar = fh.APIRouter()


@ar("/")
def landing(sess) -> Any:
    if user(sess):
        return RedirectResponse("/avatars", status_code=303)
    return Layout(
        "Welcome",
        fh.Div(
            fh.H1("Bishop: trainable digital avatars"),
            fh.P(
                "Upload a person's texts, recordings and chats, train an avatar on them, "
                "and talk with it: it answers in their manner, in their voice."
            ),
            fh.Div(
                fh.A("Login", href="/login", cls="button"),
                fh.A("Signup", href="/signup", cls="button secondary"),
                cls="row",
            ),
            cls="card",
        ),
    )


def _auth_form(action: str, *fields: Any, submit: str) -> Any:
    return fh.Form(
        *fields,
        Errors(),
        fh.Div(fh.Button(submit, type="submit"), cls="row", style="margin-top:1rem"),
        hx_post=action,
        hx_target="#form-errors",
        hx_swap="outerHTML",
        cls="card",
    )


@ar("/login", methods=["get"])
def login_page() -> Any:
    return Layout(
        "Login",
        fh.H1("Login"),
        _auth_form(
            "/login",
            Field(
                "Email", "email", kind="email", required=True, autocomplete="email", autofocus=True
            ),
            Field(
                "Password",
                "password",
                kind="password",
                required=True,
                autocomplete="current-password",
            ),
            submit="Login",
        ),
        fh.P("No account yet? ", fh.A("Sign up", href="/signup"), cls="muted"),
    )


@ar("/login", methods=["post"])
async def login(req: Request, sess, email: str = "", password: str = "") -> Any:
    return await _log_in(req, sess, email, password)


@ar("/signup", methods=["get"])
def signup_page() -> Any:
    return Layout(
        "Signup",
        fh.H1("Create an account"),
        _auth_form(
            "/signup",
            Field(
                "Email", "email", kind="email", required=True, autocomplete="email", autofocus=True
            ),
            Field("Full name", "full_name", autocomplete="name"),
            Field(
                "Password (8–40 characters)",
                "password",
                kind="password",
                required=True,
                autocomplete="new-password",
            ),
            submit="Sign up",
        ),
        fh.P("Have an account? ", fh.A("Log in", href="/login"), cls="muted"),
    )


@ar("/signup", methods=["post"])
async def signup(
    req: Request, sess, email: str = "", password: str = "", full_name: str = ""
) -> Any:
    body = {"email": email, "password": password, "full_name": full_name or None}
    try:
        await backend(req).call("POST", "/users/signup", json=body, client=_client(req))
    except ApiError as exc:
        return Errors(*exc.detail.split("; "))
    return await _log_in(req, sess, email, password, "Welcome to Bishop! Your account is ready.")


async def _log_in(
    req: Request, sess, email: str, password: str, greeting: str = "login is successful!"
) -> Any:
    try:
        token = await backend(req).call(
            "POST",
            "/login/access-token",
            data={"username": email, "password": password},
            client=_client(req),
        )
        me = await backend(req).call("GET", "/users/me", token["access_token"])
    except ApiError as exc:
        return Errors(exc.detail)
    sess["token"], sess["user"] = token["access_token"], me
    fh.add_toast(sess, greeting, "success")
    # The one full page load after login; everything later is a partial update.
    return fh.HtmxResponseHeaders(redirect="/avatars")


def _client(req: Request) -> str | None:
    return req.client.host if req.client else None


@ar("/logout", methods=["post"])
async def logout(req: Request, sess) -> Any:
    """Sign out: the backend revokes the token, so a copied cookie stops working too."""
    try:
        await backend(req).call("POST", "/logout", sess.get("token"))
    except ApiError as exc:
        if exc.status not in (401, 403):  # an expired or revoked token is signed out already
            raise
    finally:
        sess.clear()
    return fh.HtmxResponseHeaders(redirect="/")

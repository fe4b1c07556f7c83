"""The browser app over plain HTTP, as its own pages talk to it."""

import re

import httpx


async def web_client(url: str) -> httpx.AsyncClient:
    """A client of the browser app that acts like its pages: it sends the CSRF token the first
    page carries (the app refuses state changes without it)."""
    web = httpx.AsyncClient(base_url=url)
    page = await web.get("/login")
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
    assert token, "the page carries no CSRF token"
    web.headers["X-CSRF-Token"] = token.group(1)
    return web

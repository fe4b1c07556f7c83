"""Browser-app pages over plain HTTP: long chats page back, and the backend being down."""

import uuid

import httpx
from bishop_frontend.app import create_app
from bishop_frontend.pages.chats import PAGE
from bishop_frontend.settings import FrontendSettings

from tests.conftest import TEST_UPLOAD_LIMIT
from tests.factories import PASSWORD
from tests.frontend.conftest import App
from tests.support.servers import free_port, serve_app
from tests.support.web import web_client


async def _signed_in(app: App) -> tuple[httpx.AsyncClient, httpx.AsyncClient, dict[str, str]]:
    email = f"pages-{uuid.uuid4().hex[:8]}@example.com"
    api = httpx.AsyncClient(base_url=app.api + "/api/v1")
    await api.post("/users/signup", json={"email": email, "password": PASSWORD})
    token = (
        await api.post("/login/access-token", data={"username": email, "password": PASSWORD})
    ).json()
    web = await web_client(app.url)
    await web.post("/login", data={"email": email, "password": PASSWORD})
    return api, web, {"Authorization": f"Bearer {token['access_token']}"}


async def test_a_long_chat_shows_the_newest_page_and_loads_earlier_ones(app: App) -> None:
    api, web, headers = await _signed_in(app)
    aid = (await api.post("/avatars", json={"name": "Talker"}, headers=headers)).json()["id"]
    cid = (await api.post(f"/avatars/{aid}/chat", json={"title": "Long"}, headers=headers)).json()[
        "id"
    ]
    for n in range(60):  # 120 messages
        await api.post(
            f"/avatars/{aid}/chat/{cid}/msgs", json={"message": f"question {n}"}, headers=headers
        )
    page = (await web.get(f"/avatars/{aid}/chats/{cid}")).text
    shown = PAGE // 2  # a question and its reply per exchange
    assert page.count('class="msg user"') == shown and "question 59" in page
    assert f"question {59 - shown}<" not in page
    seen = page.count('class="msg user"')
    while "Load earlier messages" in page:
        before = page.split("earlier?before=")[1].split('"')[0]
        page = (
            await web.get(
                f"/avatars/{aid}/chats/{cid}/earlier",
                params={"before": before},
                headers={"HX-Request": "true"},
            )
        ).text
        seen += page.count('class="msg user"')
    assert seen == 60 and "question 0<" in page  # every message, each once, oldest last
    await api.aclose()
    await web.aclose()


async def test_backend_down_gives_a_readable_message(app: App) -> None:
    settings = FrontendSettings(
        _env_file=None, api_url=f"http://127.0.0.1:{free_port()}", session_secret="c" * 64
    )
    async with serve_app(create_app(settings)) as url:
        web = await web_client(url)
        response = await web.post("/login", data={"email": "a@b.co", "password": PASSWORD})
        await web.aclose()
    assert response.status_code == 200
    assert "The Bishop server is not reachable right now" in response.text
    assert "Traceback" not in response.text


async def test_a_resent_message_form_creates_one_message(app: App) -> None:
    """A browser that resends the form after a lost answer sends the same key again."""
    api, web, headers = await _signed_in(app)
    aid = (await api.post("/avatars", json={"name": "Once"}, headers=headers)).json()["id"]
    cid = (await api.post(f"/avatars/{aid}/chat", json={"title": "t"}, headers=headers)).json()[
        "id"
    ]
    page = (await web.get(f"/avatars/{aid}/chats/{cid}")).text
    key = page.split('id="send-idempotency-key"')[0].rsplit('value="', 1)[1].split('"')[0]
    form = {"message": "только один раз", "idempotency_key": key}
    hx = {"HX-Request": "true"}
    first = await web.post(f"/avatars/{aid}/chats/{cid}/send", data=form, headers=hx)
    again = await web.post(f"/avatars/{aid}/chats/{cid}/send", data=form, headers=hx)
    assert first.status_code == again.status_code == 200
    # Each answer brings the key for the next message, and it is a new one.
    fresh = first.text.split('id="send-idempotency-key"')[0].rsplit('value="', 1)[1].split('"')[0]
    assert fresh and fresh != key
    stored = (await api.get(f"/avatars/{aid}/chat/{cid}/msgs", headers=headers)).json()
    assert [m["text"] for m in stored if m["role"] == "user"] == ["только один раз"]
    await api.aclose()
    await web.aclose()


async def test_an_upload_over_the_limit_is_refused_as_it_streams_in(app: App) -> None:
    """No Content-Length to go by: the browser app counts the bytes and stops at the limit."""
    api, web, headers = await _signed_in(app)
    aid = (await api.post("/avatars", json={"name": "Big"}, headers=headers)).json()["id"]
    boundary = "bishopboundary"

    async def body():  # type: ignore[no-untyped-def]
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"'
            "\r\nContent-Type: text/plain\r\n\r\n"
        )
        yield head.encode()
        for _ in range(TEST_UPLOAD_LIMIT // 65536 * 20):  # 20 times the limit
            yield b"a" * 65536

    answer = await web.post(
        f"/avatars/{aid}/train/upload",
        content=body(),
        headers={"HX-Request": "true", "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    # Refused by the browser app itself (the backend's refusal would come back as a toast
    # with the page swapped): the page stays, the message appears.
    assert answer.status_code == 200 and answer.headers["hx-reswap"] == "none"
    assert "The files are larger than 2 MiB" in answer.text
    assert (await api.get(f"/avatars/{aid}/train/materials", headers=headers)).json() == []
    await api.aclose()
    await web.aclose()

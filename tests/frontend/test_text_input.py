"""The browser app's forms with NUL or control characters: the backend's refusal is shown."""

from tests.frontend.conftest import App
from tests.frontend.test_pages import _signed_in

REFUSED = "must not contain NUL or control characters"


async def test_control_characters_in_forms_get_a_readable_message(app: App) -> None:
    api, web, headers = await _signed_in(app)
    aid = (await api.post("/avatars", json={"name": "Forms"}, headers=headers)).json()["id"]
    chat = await api.post(f"/avatars/{aid}/chat", json={"title": "t"}, headers=headers)
    chats = f"/avatars/{aid}/chats"
    send = {"message": "a\x00b", "idempotency_key": "nul-message"}
    for method, path, form, shown in (
        ("POST", "/avatars", {"name": "Bad\x00"}, f"name: {REFUSED}"),
        ("PUT", f"/avatars/{aid}", {"name": "Forms", "description": "a\x00b"}, "description:"),
        ("POST", chats, {"title": "Bad\x00"}, f"title: {REFUSED}"),
        ("POST", f"{chats}/{chat.json()['id']}/rename", {"title": "Bad\x07"}, "(U+0007"),
        ("POST", f"{chats}/{chat.json()['id']}/send", send, f"message: {REFUSED}"),
        ("POST", "/signup", {"email": "nul@example.com", "password": "pass\x00word"}, "password:"),
    ):
        response = await web.request(method, path, data=form, headers={"HX-Request": "true"})
        assert response.status_code < 500 and REFUSED in response.text, (path, response.text)
        assert shown in response.text
    stored = await api.get(f"/avatars/{aid}/chat/{chat.json()['id']}/msgs", headers=headers)
    assert stored.json() == []
    assert [a["name"] for a in (await api.get("/avatars", headers=headers)).json()] == ["Forms"]
    await api.aclose()
    await web.aclose()

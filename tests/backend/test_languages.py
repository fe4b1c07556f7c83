"""An avatar speaks one of the languages the voices speak: others are refused, clearly."""

import httpx
from bishop_contracts.languages import LANGUAGES

from tests import factories
from tests.conftest import Stack


async def test_the_language_comes_from_the_list(client: httpx.AsyncClient, stack: Stack) -> None:
    headers = await factories.user(client)
    for bad in ("xx", "ру😀", "RU", ""):
        answer = await client.post("/avatars", json={"name": "A", "language": bad}, headers=headers)
        assert answer.status_code == 422, bad
    avatar = await factories.avatar(client, headers)
    assert avatar["language"] == "ru"
    for code in ("en", "zh"):
        changed = await client.put(
            f"/avatars/{avatar['id']}", json={"language": code}, headers=headers
        )
        assert changed.status_code == 200 and changed.json()["language"] == code
    refused = await client.put(f"/avatars/{avatar['id']}", json={"language": "xx"}, headers=headers)
    assert refused.status_code == 422
    schema = (await client.get("/openapi.json")).json()["components"]["schemas"]
    assert set(schema["AvatarCreate"]["properties"]["language"]["enum"]) == set(LANGUAGES)

"""Files come whole or in part (`Range`), so a player can show a length and seek."""

import httpx

from tests import factories
from tests.conftest import Stack


async def test_a_download_answers_byte_ranges(client: httpx.AsyncClient, stack: Stack) -> None:
    headers = await factories.user(client)
    aid = (await factories.avatar(client, headers))["id"]
    body = factories.TEXT * 50
    material = (await factories.upload(client, headers, aid, [("notes.txt", body)])).json()[0]
    url = f"/avatars/{aid}/train/materials/{material['id']}/download"

    whole = await client.get(url, headers=headers)
    assert whole.status_code == 200 and whole.content == body
    assert whole.headers["accept-ranges"] == "bytes"
    assert int(whole.headers["content-length"]) == len(body)

    middle = await client.get(url, headers={**headers, "Range": "bytes=100-199"})
    assert middle.status_code == 206 and middle.content == body[100:200]
    assert middle.headers["content-range"] == f"bytes 100-199/{len(body)}"
    assert middle.headers["content-length"] == "100"
    tail = await client.get(url, headers={**headers, "Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == body[-10:]
    rest = await client.get(url, headers={**headers, "Range": f"bytes={len(body) - 3}-"})
    assert rest.content == body[-3:]

    outside = await client.get(url, headers={**headers, "Range": f"bytes={len(body)}-"})
    assert outside.status_code == 416
    assert outside.headers["content-range"] == f"bytes */{len(body)}"
    # Several ranges or another unit: the whole file, as RFC 9110 allows.
    for ignored in ("bytes=0-1,5-6", "pages=1-2", "garbage"):
        answer = await client.get(url, headers={**headers, "Range": ignored})
        assert answer.status_code == 200 and answer.content == body

"""Server time of every browser-app page, with 50 avatars and a 500-message chat (the search
asks for "ИМПУЛЬС", in another case than the messages).

The backend and the browser app run in this process (embedded stack); each page is requested
30 times after a warm-up and the server's own time is read from the response (`Server-Timing`
is not used: the time is measured around the ASGI call by a middleware added here).

    uv run python -m bench.frontend_pages
"""

import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import httpx
from bishop_contracts.events import SaveResponse
from bishop_contracts.topics import Topic
from bishop_frontend.app import create_app as create_frontend
from bishop_frontend.settings import FrontendSettings
from bishop_infra.bus import bus_from_url

from tests.conftest import serve, stack_settings
from tests.support.servers import serve_app
from tests.support.web import web_client

RUNS = 30


class ServerTime:
    """ASGI middleware recording how long the app took for each request."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        self.app = app
        self.last = 0.0

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        await self.app(scope, receive, send)
        self.last = time.perf_counter() - start


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = stack_settings("embedded", Path(tmp), None)
        async with serve(settings) as api_url:
            api = httpx.AsyncClient(base_url=api_url + "/api/v1", timeout=60)
            email = f"bench-{uuid.uuid4().hex[:6]}@example.com"
            await api.post("/users/signup", json={"email": email, "password": "password1"})
            token = (
                await api.post(
                    "/login/access-token", data={"username": email, "password": "password1"}
                )
            ).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            avatars = [
                (
                    await api.post(
                        "/avatars",
                        json={"name": f"Avatar {n}", "description": "Учитель " * 10},
                        headers=headers,
                    )
                ).json()
                for n in range(50)
            ]
            aid = avatars[0]["id"]
            chat = (
                await api.post(f"/avatars/{aid}/chat", json={"title": "Long"}, headers=headers)
            ).json()
            bus = bus_from_url(settings.bus_url)
            for n in range(250):  # 250 questions + 250 replies = 500 messages
                sent = (
                    await api.post(
                        f"/avatars/{aid}/chat/{chat['id']}/msgs",
                        json={"message": f"Вопрос номер {n}: что такое импульс?"},
                        headers=headers,
                    )
                ).json()
                await bus.publish(
                    Topic.SAVE_RESPONSE,
                    SaveResponse(
                        message_id=sent["response_id"],
                        generated_text="Импульс — это масса на скорость. " * 4,
                    ),
                )
            await asyncio.sleep(1)
            count = len(
                (await api.get(f"/avatars/{aid}/chat/{chat['id']}/msgs", headers=headers)).json()
            )

            frontend = FrontendSettings(
                _env_file=None, api_url=api_url, session_secret="b" * 64, data_dir=Path(tmp)
            )
            timed = ServerTime(create_frontend(frontend))
            async with serve_app(timed) as url:
                web = await web_client(url)
                web.timeout = httpx.Timeout(60)
                await web.post("/login", data={"email": email, "password": "password1"})
                pages = {
                    "avatar list (50 avatars)": "/avatars",
                    "avatar page": f"/avatars/{aid}",
                    "chats page": f"/avatars/{aid}/chats",
                    f"chat ({count} messages)": f"/avatars/{aid}/chats/{chat['id']}",
                    "train page": f"/avatars/{aid}/train",
                    "search across chats": "/chats/search?" + urlencode({"q": "ИМПУЛЬС"}),
                }
                print("| page | median ms | p95 ms | htmx partial median ms |\n|---|---|---|---|")
                for name, path in pages.items():
                    full, partial = [], []
                    for run in range(RUNS + 3):
                        for store, extra in ((full, {}), (partial, {"HX-Request": "true"})):
                            response = await web.get(path, headers=extra)
                            assert response.status_code == 200, (path, response.status_code)
                            if run >= 3:
                                store.append(timed.last * 1000)
                    full.sort()
                    p95 = full[int(0.95 * (len(full) - 1))]
                    median, partial_median = statistics.median(full), statistics.median(partial)
                    print(f"| {name} | {median:.1f} | {p95:.1f} | {partial_median:.1f} |")
                await web.aclose()
            await api.aclose()


if __name__ == "__main__":
    asyncio.run(main())

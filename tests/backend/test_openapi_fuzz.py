"""A property-based fuzz of the whole OpenAPI document (schemathesis): whatever a client sends,
no server error, and every answer has a documented status and the documented body.

On both stacks, signed in and not; path parameters are random ids or the ids of real resources
(an avatar with a chat, a message and a material); and in workflows that follow the links
schemathesis infers between operations (create an avatar, then its chats, ...). The backend runs
under uvicorn in a thread of its own: schemathesis's calls are synchronous.

CI runs 20 examples per operation and identity, derandomized: the same cases every run. For an
exploratory run set BISHOP_FUZZ_EXAMPLES (e.g. 100) and BISHOP_FUZZ_SEED (random generation from
that seed; the workflows are then random too). Run with `-s` to see the requests and statuses.
"""

import asyncio
import copy
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from bishop_backend.main import create_app
from bishop_backend.services.health import WORKERS, remember_worker
from bishop_backend.settings import Settings
from bishop_contracts.events import WorkerHealth
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig

from tests import factories
from tests.conftest import ServerUrls, stack_settings
from tests.support import servers as srv

# aiokafka shuffles partitions with the global `random` in the backend's thread while Hypothesis
# draws cases in this one; Hypothesis takes that for a strategy using `random`. The cases drawn
# do not depend on it.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)

API = "/api/v1"
EXAMPLES = int(os.environ.get("BISHOP_FUZZ_EXAMPLES", "20"))
SEED = os.environ.get("BISHOP_FUZZ_SEED")
ADMIN_EMAIL = "fuzz-admin@example.com"
# The path parameters a real resource can stand for; the last one of a DELETE gets a fresh one.
REAL_PARAMETERS = ("avatar_id", "chat_id", "msg_id", "material_id")


def _config() -> SchemathesisConfig:
    generation: dict[str, Any] = {"max-examples": EXAMPLES, "database": "none"}
    if SEED is None:
        generation["deterministic"] = True  # the same cases on every CI run
    return SchemathesisConfig.from_dict(
        {
            **({"seed": int(SEED)} if SEED is not None else {}),
            "generation": generation,
            "checks": {
                "enabled": False,
                "not_a_server_error": {"enabled": True},
                "status_code_conformance": {"enabled": True},
                "response_schema_conformance": {"enabled": True},
            },
            "phases": {"stateful": {"max-steps": 8}},
            "request-timeout": 30,
            "suppress-health-check": ["too_slow", "filter_too_much"],
        }
    )


@dataclass
class Live:
    """The backend serving one stack, with a signed-in user that owns real resources."""

    stack: str
    url: str
    admin_password: str
    token: str = ""
    real: dict[str, str] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def sync_client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url + API, timeout=30)

    def sign_in(self, email: str = ADMIN_EMAIL, password: str | None = None) -> str:
        """A token of its own (a sign-out must not end the shared one)."""
        with self.sync_client() as client:
            answer = client.post(
                "/login/access-token",
                data={"username": email, "password": password or self.admin_password},
            )
        answer.raise_for_status()
        return answer.json()["access_token"]

    def new_user(self) -> tuple[str, str]:
        email = f"fuzz-{uuid.uuid4().hex[:12]}@example.com"
        with self.sync_client() as client:
            answer = client.post(
                "/users/signup", json={"email": email, "password": factories.PASSWORD}
            )
        answer.raise_for_status()
        return email, factories.PASSWORD

    def fresh(self, parameter: str) -> str:
        """A new resource for a DELETE to remove, so the shared ones stay for other cases."""
        avatar = self.real["avatar_id"]
        with self.sync_client() as client:
            if parameter == "avatar_id":
                answer = client.post("/avatars", json={"name": "Doomed"}, headers=self.headers)
            elif parameter == "chat_id":
                answer = client.post(
                    f"/avatars/{avatar}/chat", json={"title": "Doomed"}, headers=self.headers
                )
            else:
                answer = client.post(
                    f"/avatars/{avatar}/train",
                    data={"type": "basic"},
                    files=[("file", ("doomed.txt", factories.TEXT))],
                    headers=self.headers,
                )
        answer.raise_for_status()
        body = answer.json()
        return (body[0] if isinstance(body, list) else body)["id"]


class ServerThread:
    """uvicorn with the backend in a thread with its own event loop."""

    def __init__(self, live: Live, settings: Settings, database: str | None) -> None:
        self.live = live
        self.settings = settings
        self.database = database
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, name=f"fuzz-{live.stack}", daemon=True)

    def start(self) -> None:
        self.thread.start()
        if not self.ready.wait(120) or self.error is not None:
            raise RuntimeError(f"the {self.live.stack} backend did not start") from self.error

    def stop(self) -> None:
        if self.loop is not None and self.stopping is not None:
            self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(60)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self.error = exc
            self.ready.set()

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        app = create_app(self.settings)
        try:
            async with srv.serve_app(app) as url:
                self.live.url = url
                await self._prepare(app.state.infra)
                self.ready.set()
                await self.stopping.wait()
        finally:
            if self.database:
                await srv.drop_postgres_database(self.database)

    async def _prepare(self, infra: Any) -> None:
        # No worker runs here: their heartbeats are recorded as if they did, so the health
        # check answers 200 and any 5xx is a failure.
        for worker in WORKERS:
            await remember_worker(infra, worker, WorkerHealth(worker=worker).model_dump_json())
        live = self.live
        async with httpx.AsyncClient(base_url=live.url + API, timeout=30) as client:
            live.token = (await factories.login(client, ADMIN_EMAIL, live.admin_password))[
                "Authorization"
            ].removeprefix("Bearer ")
            avatar = await factories.avatar(client, live.headers)
            chat = await factories.chat(client, live.headers, avatar["id"])
            sent = await client.post(
                f"/avatars/{avatar['id']}/chat/{chat['id']}/msgs",
                json={"message": "Hello"},
                headers=live.headers,
            )
            material = await factories.upload(
                client, live.headers, avatar["id"], [("notes.txt", factories.TEXT)]
            )
            assert sent.status_code == 201 and material.status_code == 201
            live.real = {
                "avatar_id": avatar["id"],
                "chat_id": chat["id"],
                "msg_id": sent.json()["message"]["id"],
                "material_id": material.json()[0]["id"],
            }


@pytest.fixture(scope="module", params=["embedded", "servers"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    data_dir: Path = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    database = None
    if request.param == "servers":
        database_url, database = asyncio.run(srv.create_postgres_database())
        urls = request.getfixturevalue("server_urls")
        # Its own Redis keys: the worker heartbeats recorded here are not other tests'.
        urls = ServerUrls(kafka=urls.kafka, s3=urls.s3, redis=srv.redis_url())
        settings = stack_settings("servers", data_dir, urls, database_url)
    else:
        settings = stack_settings("embedded", data_dir, None)
    password = "fuzz-" + uuid.uuid4().hex[:12]
    settings = settings.model_copy(
        update={
            "first_superuser_email": ADMIN_EMAIL,
            "first_superuser_password": password,
            # A stream on a reply that never comes (no worker runs) gives up quickly.
            "reply_stream_timeout": 1.0,
            "reply_stream_heartbeat": 0.5,
            "worker_down_after_seconds": 24 * 3600.0,
        }
    )
    live = Live(stack=request.param, url="", admin_password=password)
    server = ServerThread(live, settings, database)
    server.start()
    started = time.monotonic()
    try:
        yield live
    finally:
        server.stop()
        total = sum(live.statuses.values())
        print(
            f"\nfuzz {live.stack}: {total} requests in {time.monotonic() - started:.0f} s, "
            f"statuses {dict(sorted(live.statuses.items()))}"
        )


# The document the app serves, built without serving it: pytest collects one test per operation.
DOCUMENT = create_app(Settings(_env_file=None, secret_key="openapi-document-only")).openapi()
schema = schemathesis.openapi.from_dict(copy.deepcopy(DOCUMENT), config=_config())


@schema.parametrize()
@schema.given(on_real=st.booleans())
@pytest.mark.parametrize("identity", ["signed-in", "anonymous"])
def test_every_operation(case: Any, on_real: bool, live: Live, identity: str) -> None:
    headers: dict[str, str] = {}
    if identity == "signed-in":
        headers = _headers_for(live, case, live.token)
        if on_real:
            _use_real_resources(live, case)
    response = case.call_and_validate(base_url=live.url, headers=headers)
    live.statuses[response.status_code] += 1


def test_workflows(live: Live) -> None:
    """Chains of calls that pass on what one answer returned (an avatar's id, a chat's...).

    Each chain is a new user's: what the server answers depends on the chain's own calls only,
    as Hypothesis needs when it replays one."""

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            self.user = live.new_user()
            self.token = live.sign_in(*self.user)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {
                "base_url": live.url,
                "headers": _headers_for(live, case, self.token, self.user),
            }

        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)
            live.statuses[response.status_code] += 1

    Workflow.run(
        settings=hypothesis.settings(
            max_examples=max(EXAMPLES, 4),
            stateful_step_count=8,
            deadline=None,
            derandomize=SEED is None,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )


def test_the_served_document_is_the_fuzzed_one(live: Live) -> None:
    with live.sync_client() as client:
        assert client.get("/openapi.json").json() == DOCUMENT


def test_error_statuses_are_declared_where_they_can_happen() -> None:
    paths = DOCUMENT["paths"]
    outage = {"$ref": "#/components/schemas/OutageBody"}
    for path, operations in paths.items():
        for operation in operations.values():
            answer = operation["responses"]["503"]
            assert "Retry-After" in answer["headers"], path
            if not path.endswith("/health-check"):
                assert answer["content"]["application/json"]["schema"] == outage, path
    login = paths[f"{API}/login/access-token"]["post"]["responses"]
    assert {"400", "422", "429"} <= login.keys() and "Retry-After" in login["429"]["headers"]
    assert "401" in paths[f"{API}/logout"]["post"]["responses"]
    upload = paths[f"{API}/avatars/{{avatar_id}}/train"]["post"]["responses"]
    assert {"401", "403", "404", "409", "413", "415", "422"} <= upload.keys()
    chat = paths[f"{API}/avatars/{{avatar_id}}/chat/{{chat_id}}"]
    assert {"401", "404"} <= chat["get"]["responses"].keys()
    assert {"400", "413", "422"} <= chat["patch"]["responses"].keys()


def _headers_for(
    live: Live, case: Any, token: str, user: tuple[str, str] | None = None
) -> dict[str, str]:
    if case.path == f"{API}/logout":
        token = live.sign_in(*user) if user else live.sign_in()
    return {"Authorization": f"Bearer {token}"}


def _use_real_resources(live: Live, case: Any) -> None:
    names = [name for name in REAL_PARAMETERS if name in (case.path_parameters or {})]
    if not names:
        return
    ids = {name: live.real[name] for name in names}
    if case.method.upper() == "DELETE":
        ids[names[-1]] = live.fresh(names[-1])
    case.path_parameters = {**case.path_parameters, **ids}

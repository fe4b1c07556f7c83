"""What a storm of wrong-password sign-ins does to everyone else's requests.

`GET /users/me` is timed on the embedded backend while idle, then while 8 clients keep
sending wrong-password sign-ins in parallel (password hashing costs tens of milliseconds of
CPU on purpose). Each storm client uses its own account, so the per-account lockout does not
stop the storm; the per-address limit is raised for the same reason.

    uv run python -m bench.login_storm --requests 200
"""

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from tests.conftest import serve, stack_settings

PASSWORD = "correct-horse-1"


def percentile(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100)[q - 1] if len(samples) > 1 else samples[0]


async def time_me(client: httpx.AsyncClient, headers: dict[str, str], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        answer = await client.get("/users/me", headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, answer.text
        await asyncio.sleep(0.005)
    return samples


async def main(requests: int, storm: int) -> None:
    with tempfile.TemporaryDirectory() as root:
        settings = stack_settings("embedded", Path(root), None).model_copy(
            update={"login_rate_limit": "100000/minute", "login_failures_limit": "100000/minute"}
        )
        async with (
            serve(settings) as url,
            httpx.AsyncClient(base_url=url + "/api/v1", timeout=60) as client,
        ):
            emails = [f"storm-{n}-{uuid.uuid4().hex[:6]}@example.com" for n in range(storm + 1)]
            for email in emails:
                await client.post("/users/signup", json={"email": email, "password": PASSWORD})
            token = (
                await client.post(
                    "/login/access-token", data={"username": emails[0], "password": PASSWORD}
                )
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            await time_me(client, headers, 20)  # warm-up
            idle = await time_me(client, headers, requests)

            stop = asyncio.Event()
            attempts = 0

            async def wrong(email: str) -> None:
                nonlocal attempts
                async with httpx.AsyncClient(base_url=url + "/api/v1", timeout=60) as own:
                    while not stop.is_set():
                        form = {"username": email, "password": "not-the-password"}
                        answer = await own.post("/login/access-token", data=form)
                        assert answer.status_code == 400, answer.text
                        attempts += 1

            storming = [asyncio.create_task(wrong(e)) for e in emails[1:]]
            await asyncio.sleep(1.0)
            started = time.perf_counter()
            try:
                busy = await time_me(client, headers, requests)
            finally:
                stop.set()
                await asyncio.gather(*storming)
            elapsed = time.perf_counter() - started

    print(f"{'run':<42} {'p50 ms':>8} {'p95 ms':>8}")
    for name, samples in (("GET /users/me, idle", idle), (f"GET /users/me, {storm} storms", busy)):
        print(f"{name:<42} {percentile(samples, 50):8.1f} {percentile(samples, 95):8.1f}")
    print(f"wrong-password sign-ins meanwhile: {attempts / elapsed:.0f}/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--storm", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.storm))

"""Users, avatars and files for tests, made through the public API."""

import io
import math
import struct
import uuid
import wave

import httpx

PASSWORD = "correct-horse-1"


async def user(client: httpx.AsyncClient, *, full_name: str = "Test User") -> dict[str, str]:
    """Sign up a fresh user and return auth headers."""
    email = f"user-{uuid.uuid4().hex[:10]}@example.com"
    response = await client.post(
        "/users/signup", json={"email": email, "password": PASSWORD, "full_name": full_name}
    )
    assert response.status_code == 201, response.text
    return await login(client, email)


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, str]:
    response = await client.post(
        "/login/access-token", data={"username": email, "password": password}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def avatar(client: httpx.AsyncClient, headers: dict[str, str], **fields: str) -> dict:
    response = await client.post("/avatars/", json={"name": "Ann", **fields}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def chat(
    client: httpx.AsyncClient, headers: dict[str, str], avatar_id: str, title: str = "First"
) -> dict:
    response = await client.post(
        f"/avatars/{avatar_id}/chat", json={"title": title}, headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()


def wav_bytes(seconds: float = 1.0, rate: int = 16000, freq: float = 220.0) -> bytes:
    frames = b"".join(
        struct.pack("<h", int(12000 * math.sin(2 * math.pi * freq * i / rate)))
        for i in range(int(seconds * rate))
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return buffer.getvalue()


TEXT = "Привет! Меня зовут Анна. Я преподаю физику и люблю объяснять сложное просто.\n".encode()


async def upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    avatar_id: str,
    files: list[tuple[str, bytes]],
    material_type: str = "basic",
) -> httpx.Response:
    return await client.post(
        f"/avatars/{avatar_id}/train/",
        data={"type": material_type},
        files=[("file", (name, body)) for name, body in files],
        headers=headers,
    )

import uuid

import httpx

from tests import factories
from tests.conftest import Stack


async def test_signup_login_me(client: httpx.AsyncClient) -> None:
    headers = await factories.user(client, full_name="Анна Петрова")
    me = await client.get("/users/me", headers=headers)
    assert me.status_code == 200
    assert me.json()["full_name"] == "Анна Петрова"
    assert "hashed_password" not in me.json()
    token = await client.post("/login/test-token", headers=headers)
    assert token.json()["id"] == me.json()["id"]


async def test_bad_credentials_and_signups(client: httpx.AsyncClient) -> None:
    email = f"dup-{uuid.uuid4().hex[:8]}@example.com"
    first = await client.post("/users/signup", json={"email": email, "password": "password1"})
    assert first.status_code == 201
    again = await client.post(
        "/users/signup", json={"email": email.upper(), "password": "password1"}
    )
    assert again.status_code == 409
    assert again.json()["detail"] == "The user with this email already exists in the system"

    short = await client.post(
        "/users/signup", json={"email": "short@example.com", "password": "1234567"}
    )
    assert short.status_code == 422
    invalid = await client.post(
        "/users/signup", json={"email": "not-an-email", "password": "password1"}
    )
    assert invalid.status_code == 422

    wrong = await client.post(
        "/login/access-token", data={"username": email, "password": "password2"}
    )
    assert wrong.status_code == 400
    assert wrong.json() == {"detail": "Incorrect email or password"}
    nobody = await client.post(
        "/login/access-token", data={"username": "no@example.com", "password": "password1"}
    )
    assert nobody.status_code == 400
    assert (
        await client.post("/login/access-token", data={"username": email, "password": "password1"})
    ).status_code == 200


async def test_protected_routes_need_a_valid_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/users/me")).status_code == 401
    forged = {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"}
    assert (await client.get("/avatars/", headers=forged)).status_code == 401


async def test_only_superusers_manage_users(client: httpx.AsyncClient) -> None:
    headers = await factories.user(client)
    response = await client.post(
        "/users", json={"email": "new@example.com", "password": "password1"}, headers=headers
    )
    assert response.status_code == 403
    assert (await client.get("/users", headers=headers)).status_code == 403


async def test_a_password_hashed_with_four_lanes_still_signs_in_and_is_rehashed_with_one(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    """Hashes from before the one-lane setting (Argon2's four lanes: four threads per hash)
    keep working, and the next sign-in stores a one-lane hash."""
    from bishop_backend.db import create_engine, session_factory
    from bishop_backend.models import User
    from pwdlib import PasswordHash

    email = f"old-{uuid.uuid4().hex[:8]}@example.com"
    signup = await client.post("/users/signup", json={"email": email, "password": "password1"})
    assert signup.status_code == 201
    engine = create_engine(stack.settings.resolved_database_url)
    sessions = session_factory(engine)
    try:
        async with sessions() as session:
            user = await session.get(User, uuid.UUID(signup.json()["id"]))
            assert user is not None and ",p=1$" in user.hashed_password
            user.hashed_password = PasswordHash.recommended().hash("password1")
            assert ",p=4$" in user.hashed_password
            session.add(user)
            await session.commit()
        form = {"username": email, "password": "password1"}
        assert (await client.post("/login/access-token", data=form)).status_code == 200
        async with sessions() as session:
            user = await session.get(User, uuid.UUID(signup.json()["id"]))
            assert user is not None and ",p=1$" in user.hashed_password
        assert (await client.post("/login/access-token", data=form)).status_code == 200
        wrong = {"username": email, "password": "password2"}
        assert (await client.post("/login/access-token", data=wrong)).status_code == 400
    finally:
        await engine.dispose()

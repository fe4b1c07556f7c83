"""What an avatar can do now, said honestly: its lifecycle, and the notices a chat needs."""

from typing import Any

from starlette.requests import Request


async def chat_notices(
    req: Request, sess: dict[str, Any], avatar: dict[str, Any]
) -> tuple[Any, ...]:
    """Notices shown above a chat with `avatar` (untrained warning, demo banner)."""
    return ()

"""Search across all of the user's chats."""

from typing import Annotated

from fastapi import APIRouter, Query

from bishop_backend.api.deps import CurrentUser, SessionDep
from bishop_backend.models.chat import SearchHit
from bishop_backend.models.text import SafeLine
from bishop_backend.services import search

router = APIRouter(prefix="/chats", tags=["chats"])


@router.get("/search", response_model=list[SearchHit])
async def search_chats(
    session: SessionDep,
    user: CurrentUser,
    q: Annotated[SafeLine, Query(min_length=1, max_length=200)],
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
) -> list[SearchHit]:
    """The user's chats whose title or messages contain `q`, case aside: titles first, then
    messages, the newest first, each with a snippet around the match."""
    return await search.search(session, user, q, limit)

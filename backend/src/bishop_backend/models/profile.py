"""What the workers run, as the browser app needs to know it (the demo banner)."""

from pydantic import BaseModel


class ProfilePublic(BaseModel):
    # None while the worker has not answered a health ping yet.
    text_profile: str | None
    clones_voices: bool | None
    demo: bool

"""The deployment's profile, from what the workers said about themselves in their heartbeats."""

import json
from typing import Any

from bishop_backend.infra import Infra
from bishop_backend.models.profile import ProfilePublic


async def _details(infra: Infra, worker: str) -> dict[str, Any]:
    raw = await infra.state.get_value(f"worker:{worker}")
    return json.loads(raw).get("details", {}) if raw else {}


async def profile(infra: Infra) -> ProfilePublic:
    """Which text profile runs and whether voices are cloned (demo: a tiny model, no cloning)."""
    text = await _details(infra, "ml-text")
    sound = await _details(infra, "ml-sound")
    clones = sound.get("clones_voices")
    text_profile = text.get("profile")
    return ProfilePublic(
        text_profile=text_profile,
        clones_voices=None if clones is None else clones == "True",
        demo=text_profile == "demo",
    )

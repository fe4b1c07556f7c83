"""Training offloaded to a Kaggle GPU (the thesis's setup): the dataset goes up as a private
Kaggle dataset, a script kernel carrying Bishop's training code runs `train.main` on it, and
the adapter comes back from the kernel's output.

Kaggle's API cannot cancel a running kernel: a stopped run is abandoned and its output unused.
"""

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bishop_text.train import Stopped, TrainArgs

# The training code the kernel needs; it has no Bishop package, so the sources travel inside.
SOURCES = ("__init__.py", "chat_format.py", "dataset.py", "models.py", "train.py")
RUN_SCRIPT = """\
import json, os, subprocess, sys
if os.path.isdir("/kaggle"):
    packages = ["peft", "bitsandbytes", "accelerate"]
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *packages])
INPUT = os.environ.get("BISHOP_KAGGLE_INPUT", "/kaggle/input/{dataset}")
WORKING = os.environ.get("BISHOP_KAGGLE_WORKING", "/kaggle/working")
package = os.path.join(WORKING, "code", "bishop_text")
os.makedirs(package, exist_ok=True)
for name, source in json.loads({sources!r}).items():
    with open(os.path.join(package, name), "w") as f:
        f.write(source)
sys.path.insert(0, os.path.dirname(package))
from bishop_text.train import TrainArgs, main
args = json.loads({args!r})
args["dataset"] = os.path.join(INPUT, "dataset.jsonl")
args["output_dir"] = os.path.join(WORKING, "adapter")
main(TrainArgs(**args), progress=lambda p: print(json.dumps({{"progress": p}}), flush=True))
"""


class KaggleTrainer:
    def __init__(
        self,
        api: Any,
        username: str,
        *,
        poll_seconds: float = 30.0,
        accelerator: str = "NvidiaTeslaT4",
    ) -> None:
        self.api = api
        self.username = username
        self.poll_seconds = poll_seconds
        self.accelerator = accelerator

    def run(
        self,
        name: str,
        args: TrainArgs,
        work: Path,
        progress: Callable[[dict[str, float]], None],
        should_stop: Callable[[], bool],
    ) -> Path:
        """Blocking: train on Kaggle; the folder the adapter was downloaded into."""
        slug = f"bishop-{name}"[:50]
        dataset_folder = work / "kaggle-dataset"
        dataset_folder.mkdir(parents=True)
        (dataset_folder / "dataset.jsonl").write_bytes(Path(args.dataset).read_bytes())
        _write_json(
            dataset_folder / "dataset-metadata.json",
            {
                "title": slug,
                "id": f"{self.username}/{slug}",
                "licenses": [{"name": "CC0-1.0"}],
            },
        )
        self.api.dataset_create_new(str(dataset_folder), public=False, quiet=True)

        kernel_folder = work / "kaggle-kernel"
        kernel_folder.mkdir()
        here = Path(__file__).parent
        sources = json.dumps({n: (here / n).read_text() for n in SOURCES})
        remote = {k: v for k, v in asdict(args).items() if k not in ("dataset", "output_dir")}
        script = RUN_SCRIPT.format(dataset=slug, sources=sources, args=json.dumps(remote))
        (kernel_folder / "run.py").write_text(script)
        _write_json(
            kernel_folder / "kernel-metadata.json",
            {
                "id": f"{self.username}/{slug}",
                "title": slug,
                "code_file": "run.py",
                "language": "python",
                "kernel_type": "script",
                "is_private": True,
                "enable_gpu": True,
                "enable_internet": True,
                "dataset_sources": [f"{self.username}/{slug}"],
            },
        )
        self.api.kernels_push(str(kernel_folder), acc=self.accelerator)

        ref = f"{self.username}/{slug}"
        started = time.monotonic()
        while True:
            if should_stop():
                raise Stopped
            status = self.api.kernels_status(ref)
            state = str(getattr(status, "status", status)).lower()
            if "complete" in state:
                break
            if "error" in state or "cancel" in state:
                message = getattr(status, "failure_message", "") or state
                raise RuntimeError(f"the Kaggle run failed: {message}")
            progress(
                {
                    "step": 0,
                    "total_steps": max(args.max_steps, 0),
                    "loss": float("nan"),
                    "eval_loss": float("nan"),
                    "tokens_per_second": float("nan"),
                    "eta_seconds": float("nan"),
                    "elapsed_seconds": time.monotonic() - started,
                }
            )
            time.sleep(self.poll_seconds)
        output = work / "kaggle-output"
        self.api.kernels_output(ref, str(output), force=True, quiet=True)
        adapter = next((p.parent for p in output.rglob("bishop.json")), None)
        if adapter is None:
            raise RuntimeError("the Kaggle run finished without an adapter in its output")
        return adapter


def client() -> Any:
    """The authenticated Kaggle API (KAGGLE_USERNAME and KAGGLE_KEY, or ~/.kaggle/kaggle.json)."""
    from kaggle.api.kaggle_api_extended import KaggleApi

    api = KaggleApi()
    api.authenticate()
    return api


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2))

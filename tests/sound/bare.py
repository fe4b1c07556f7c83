"""Test code run as on a machine with only Python and uv: a fresh interpreter whose PATH holds
the virtual environment's programs alone, so no system espeak-ng or ffmpeg can be reached."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PROGRAMS = ("espeak-ng", "espeak", "ffmpeg", "ffprobe")

# The child: no system program may be visible, then `module:function(*args)` runs and its
# JSON-able result is written to the file named last.
CHILD = """
import importlib, json, shutil, sys
visible = [p for p in {programs!r} if shutil.which(p)]
assert not visible, f"PATH still reaches {{visible}}"
module, function = sys.argv[1].split(":")
result = getattr(importlib.import_module(module), function)(*sys.argv[2:-1])
with open(sys.argv[-1], "w") as out:
    json.dump(result, out)
"""


def run_bare(call: str, *args: str, result: Path, timeout: float = 300) -> object:
    """`call` ("module:function") with `args` in a bare child process; returns its result."""
    env = {k: v for k, v in os.environ.items() if k != "IMAGEIO_FFMPEG_EXE"}
    env["PATH"] = str(Path(sys.executable).parent)  # the venv's bin: python, no media programs
    env.setdefault("HF_HUB_OFFLINE", "1")
    code = CHILD.format(programs=SYSTEM_PROGRAMS)
    done = subprocess.run(
        [sys.executable, "-c", code, call, *args, str(result)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(result.read_text())

"""Make `import torchaudio` work next to torch 2.13.

PyPI has no torchaudio built for torch 2.13 (its newest wheel targets an older torch and a CUDA
runtime), so its compiled extension may fail to load. XTTS uses only torchaudio's pure-Python
parts (resampling, mel spectrograms), so when the extension cannot load we import torchaudio
without it. Audio files are never read through torchaudio here: the worker decodes them itself.
"""

import sys
import types


def ensure_importable() -> None:
    try:
        import torchaudio
    except (ImportError, OSError):
        for name in [n for n in sys.modules if n == "torchaudio" or n.startswith("torchaudio.")]:
            del sys.modules[name]
        extension = types.ModuleType("torchaudio._extension")
        extension._IS_TORCHAUDIO_EXT_AVAILABLE = False  # type: ignore[attr-defined]
        extension._IS_ALIGN_AVAILABLE = False  # type: ignore[attr-defined]
        extension._check_cuda_version = lambda: None  # type: ignore[attr-defined]
        extension.fail_if_no_align = lambda func: _unavailable  # type: ignore[attr-defined]
        sys.modules["torchaudio._extension"] = extension
        import torchaudio  # noqa: F401


def _unavailable(*_: object, **__: object) -> None:
    raise RuntimeError("torchaudio's compiled extension is not available in this installation")

"""The synthesis backend interface. Calls are blocking: the worker runs them in a thread, one
at a time, because a model's inference state is not safe to share."""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


class StaleConditioning(Exception):
    """A cached conditioning this backend cannot use (another codec, another format): it is
    computed again from the samples."""


class Synthesizer(ABC):
    name: str
    sample_rate: int  # of the speech it produces
    input_rate: int  # voice samples are prepared at this rate
    max_chars = 200  # the longest text one call takes well
    # The avatar languages (bishop_contracts.languages codes) it speaks; empty: all of them.
    languages: Sequence[str] = ()
    # False for backends that speak in a fixed voice: the reply then says it is not cloned.
    clones_voices: bool = True

    @abstractmethod
    def conditioning(self, samples: list[Path]) -> Any:
        """Speaker conditioning from clean mono WAV samples at `input_rate`."""

    @abstractmethod
    def preset(self) -> Any:
        """Conditioning of the built-in voice used when the avatar has no usable sample."""

    @abstractmethod
    def synthesize(self, text: str, language: str, conditioning: Any) -> np.ndarray:
        """Mono float32 audio at `sample_rate`."""

    def dumps(self, conditioning: Any) -> bytes:
        """Serialise conditioning for the object-storage cache."""
        raise NotImplementedError

    def loads(self, data: bytes) -> Any:
        """The conditioning `dumps` stored; raises StaleConditioning if it cannot be used."""
        raise NotImplementedError

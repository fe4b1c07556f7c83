"""The worker's child processes (training runs, ingest): spawned, never forked, since the worker
has threads and torch loaded; and never outliving the worker, however it ends.

Light on purpose: a child imports this before anything else, and the ingest child never imports
torch or transformers at all.
"""

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import types
from collections.abc import Iterator
from multiprocessing.context import SpawnContext

log = logging.getLogger("bishop.text")
PARENT_POLL_SECONDS = 1.0
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def spawn_context() -> SpawnContext:
    """Where the worker's children come from: a fresh interpreter, not a copy of the worker."""
    return multiprocessing.get_context("spawn")


@contextlib.contextmanager
def main_module_left_behind() -> Iterator[None]:
    """Around `Process.start()`: a spawned child runs the parent's main module again before its
    target (so that what it defines can be unpickled), and the worker's is a console script
    whose first line imports the whole worker, torch and transformers with it: 20 seconds and
    800 MiB for a child that needs none of it. Its target must then not live in `__main__`.

    While the child is started, `__main__` is an empty module: start it on the event loop's
    thread, where nothing else runs meanwhile."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def die_with_parent(parent: int) -> None:
    """End this process when the worker that started it ends, even by SIGKILL, which gives
    the worker no chance to stop it: the kernel's parent-death signal where there is one
    (Linux), and everywhere a thread that watches the parent.

    The kernel sends the signal when the *thread* that started the child ends: start children
    on the event loop's thread, never from a thread pool, whose threads come and go."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
                log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
        except (OSError, AttributeError):
            log.warning("prctl is not available; the parent is watched instead")
    # A parent that died before the signal was asked for never sends it.
    if _parent_gone(parent):
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch", daemon=True).start()


def _parent_gone(parent: int) -> bool:
    if os.name == "posix" and os.getppid() != parent:
        return True  # re-parented (to init or a subreaper): the worker is gone
    # Where pids say nothing (Windows), multiprocessing's handle on the parent does.
    handle = multiprocessing.parent_process()
    return handle is not None and not handle.is_alive()


def _watch_parent(parent: int) -> None:
    while not _parent_gone(parent):
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)

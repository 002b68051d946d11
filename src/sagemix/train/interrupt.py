"""Run bookkeeping for the trainer: stopping at a step boundary on Ctrl-C, and the data's hash.

:class:`StopOnSigint` is why a Ctrl-C in the middle of an epoch resumes bit for bit: the signal only
sets a flag, and :class:`sagemix.train.Trainer` reads it between steps, so the checkpoint it then
writes holds the state of the last completed step (an exception raised inside a step would leave
BatchNorm buffers updated by a step that the rewound step counter replays).
"""
from __future__ import annotations

import signal
import sys
import threading
from typing import Any

__all__ = ["StopOnSigint", "data_hash"]


class StopOnSigint:
    """While active, the first SIGINT (Ctrl-C) only sets :attr:`requested`, which the training loop
    reads between steps; a second one raises KeyboardInterrupt at once (and sets :attr:`forced`).

    Installed only in the main thread, and not when SIGINT is ignored (a background job); the
    previous handler is restored on leaving the block.

    Args:
        enabled: False installs nothing (distributed runs: the ranks could stop at different steps).

    Example:
        >>> import os, signal
        >>> with StopOnSigint() as stop:
        ...     os.kill(os.getpid(), signal.SIGINT)
        ...     stop.requested
        True
    """

    def __init__(self, enabled: bool = True) -> None:
        self.requested = False
        self.forced = False
        self._enabled = enabled
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            self.forced = True
            raise KeyboardInterrupt
        self.requested = True
        print("Ctrl-C: stopping after the current step to save a checkpoint (press again to stop at once, "
              "without saving)", file=sys.stderr, flush=True)

    def __enter__(self) -> "StopOnSigint":
        self.requested = self.forced = False
        if (self._enabled and threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN):
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False


def data_hash(data: Any) -> str | None:
    """The data set's ``data_hash`` (sha256 of its pixels and labels), recorded with the run so that
    another machine can check it trained on the same data; None where the data type has none."""
    value = getattr(data, "data_hash", None)
    if value is not None:
        return str(value)
    try:
        from ..data.registry import tensor_hash  # type: ignore[attr-defined]
    except ImportError:
        return None
    return str(tensor_hash(data.images, data.labels))

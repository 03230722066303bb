"""How the ``cellist`` command reports problems: one line each, never a traceback.

Every error, warning and log record of a command goes to stderr as one line
``cellist <command>: <level>: <message>``; library messages that span paragraphs (PyTorch's
``weights_only`` refusal has seven lines) are cut to the line that says what is wrong. A
traceback is shown only with ``--verbose``, for errors nobody anticipated.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import warnings
from collections.abc import Iterator

#: Loggers whose records the command shows (the package's own).
PACKAGE_LOGGER = "napari_cellist"
_WEIGHTS_ONLY = "Weights only load failed"
#: PyTorch's message for a truncated / non-zip file, followed by three sentences of advice.
_TORCH_ZIP = re.compile(r"PytorchStreamReader failed reading zip archive: ([^.]*)\.[^)]*")


class OneLineFormatter(logging.Formatter):
    """``cellist <command>: warning: <first lines of the message joined>``."""

    def __init__(self, command: str, verbose: bool) -> None:
        super().__init__()
        self._command = command
        self._verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"cellist {self._command}: {record.levelname.lower()}: {one_line(record.getMessage())}"
        )
        if self._verbose and record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def one_line(message: object) -> str:
    """A message on one line: an exception's or a text's lines joined, torch's advice dropped.

    Parameters
    ----------
    message : object
        An exception or a string.

    Returns
    -------
    str
        For PyTorch's ``weights_only`` refusal, a sentence saying that the file holds Python
        objects that are not loaded for safety (and which one, when torch names it); otherwise
        the non-empty lines joined by ``" "``, at most 600 characters.
    """
    text = str(message)
    if _WEIGHTS_ONLY in text:
        return _weights_only_reason(text)
    text = _torch_zip_reason(text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(message).__name__ if isinstance(message, BaseException) else ""
    joined = " ".join(lines)
    return joined if len(joined) <= 600 else joined[:597] + "..."


def _weights_only_reason(text: str) -> str:
    """PyTorch's seven-line ``weights_only`` refusal as one sentence."""
    detail = next((line.strip() for line in text.splitlines()[1:] if "nsupported" in line), "")
    target = re.search(r"GLOBAL (\S+)", detail)
    if target:
        return (
            f"it asks to call the Python object {target.group(1)}, which was not loaded "
            "(loading it could run code): a malicious or foreign file, not a checkpoint"
        )
    if detail:
        return f"not a PyTorch checkpoint, or a corrupt one ({detail.rstrip('.')})"
    return "it holds Python objects other than tensors, which were not loaded (they could run code)"


def _torch_zip_reason(text: str) -> str:
    return _TORCH_ZIP.sub(r"an incomplete or corrupt PyTorch file (\1)", text)


def describe_error(error: BaseException) -> str:
    """One line for an error at the command's boundary (its type named if unexpected)."""
    expected = (ValueError, OSError, ImportError, LookupError)
    text = one_line(error)
    if isinstance(error, MemoryError):
        return (
            "out of memory; the input is too large for this machine "
            "(crop or tile it, or use a smaller model)"
        )
    if isinstance(error, expected) and text:
        return text
    return f"unexpected {type(error).__name__}: {text} (run with -v for details)"


@contextlib.contextmanager
def command_output(command: str, verbose: bool) -> Iterator[None]:
    """Route the package's log records and Python warnings to stderr as one line each.

    The handler is bound to the ``sys.stderr`` of the call (so in-process callers that capture
    stderr see the lines) and removed afterwards; warnings are shown once per message.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter(command, verbose))
    logger = logging.getLogger(PACKAGE_LOGGER)
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        logging.getLogger(f"{PACKAGE_LOGGER}.cli").warning("%s", message)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show
            yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]

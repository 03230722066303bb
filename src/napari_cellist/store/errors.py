"""Store errors, and the one place that turns database driver errors into actionable messages.

Everything the store raises for a problem a person can fix (a file that is not a database, a
locked or unwritable store, a store written by a newer napari-cellist) is a :class:`StoreError`,
a ``ValueError`` so that napari and the CLI show its message as it is instead of a traceback.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc

logger = logging.getLogger(__name__)


class StoreError(ValueError):
    """A project store cannot be opened, read or written; the message says what to do."""


class SchemaVersionError(StoreError):
    """The store was written by a newer napari-cellist than this one (it is left untouched)."""


class StoreNotFoundError(StoreError):
    """A store opened for reading (``read_only=True``) does not exist; nothing was created."""


class StaleCommitError(StoreError):
    """A commit was refused because the image was committed again since its ``based_on``."""


class StaleCommitWarning(UserWarning):
    """A commit replaced a commit its writer had not seen (made meanwhile by someone else).

    Attributes
    ----------
    image_id : int
        The image committed.
    based_on : int or None
        The commit the writer started from (None: it started from no commit).
    current : int or None
        The image's latest commit when this one was written (the one it replaced).
    commit_id : int or None
        The new commit (None when it was refused).
    """

    def __init__(
        self, image_id: int, based_on: int | None, current: int | None, commit_id: int | None
    ) -> None:
        self.image_id = image_id
        self.based_on = based_on
        self.current = current
        self.commit_id = commit_id
        super().__init__(stale_message(image_id, based_on, current, commit_id))


def stale_message(
    image_id: int, based_on: int | None, current: int | None, commit_id: int | None
) -> str:
    """What happened to a commit made on top of ``based_on`` while ``current`` was the latest."""
    base = "no commit" if based_on is None else f"commit {based_on}"
    now = "no commit" if current is None else f"commit {current}"
    if commit_id is None:
        return (
            f"Image {image_id} was committed again since you loaded it: your annotations are "
            f"based on {base}, the latest is {now} (another window or person). Nothing was "
            "written; load the image again to see the latest annotations and redo your edits, "
            "or commit with on_stale='warn' to replace them."
        )
    return (
        f"Commit {commit_id} of image {image_id} is based on {base}, but {now} had been made "
        f"meanwhile (another window or person); your commit replaced it. Both stay in the "
        f"history: compare them with store.commits({image_id})."
    )


# (substrings of the driver's message, what to tell the user); first match wins
_HINTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("locked", "busy"),
        "The project store {where} is locked by another program (another napari window or "
        "`cellist` command writing to it). Wait for it to finish or close it, then try again.",
    ),
    (
        ("not a database", "encrypted", "malformed", "file is not"),
        "{where} is not a readable napari-cellist project store (not an SQLite database, or "
        "damaged). Choose another file or an empty folder; if it is a damaged store, restore "
        "the '.bak' copy next to it.",
    ),
    (
        ("readonly", "read-only", "unable to open", "permission", "disk i/o"),
        "Cannot write the project store {where}. Check that its folder exists and is writable "
        "(SQLite also writes '-wal' and '-shm' files beside it), or choose another location.",
    ),
    (
        ("disk is full", "no space"),
        "The disk holding the project store {where} is full. Free some space and try again.",
    ),
    (
        ("foreign key",),
        "A record refers to an image, commit or model version that does not exist in {where}.",
    ),
    (
        (
            "could not connect",
            "connection refused",
            "can't connect",
            "authentication",
            "password",
            "unknown host",
            "name or service not known",
        ),
        "Cannot connect to the database server of {where}. Check the URL, that the server "
        "runs and is reachable, and the user name and password.",
    ),
)


def explain(error: BaseException, where: str) -> str:
    """An actionable message for a database driver error raised while using store ``where``."""
    detail = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
    lowered = detail.lower()
    for needles, hint in _HINTS:
        if any(needle in lowered for needle in needles):
            return f"{hint.format(where=where)} (database said: {detail})"
    return f"The project store {where} failed: {detail}"


@contextmanager
def translate_errors(where: str) -> Iterator[None]:
    """Re-raise database driver errors inside the block as :class:`StoreError` for ``where``.

    The original exception stays attached as ``__cause__`` (callers may check for
    :class:`sqlalchemy.exc.IntegrityError` there).
    """
    try:
        yield
    except (sa_exc.DBAPIError, sqlite3.Error) as error:
        logger.debug("store %s: driver error", where, exc_info=True)
        raise StoreError(explain(error, where)) from error

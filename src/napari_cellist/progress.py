"""Long work as generators: they yield :class:`~napari_cellist.types.Progress` and return a result.

The GUI wraps such a generator in a napari ``thread_worker`` (progress bar, Stop button); headless
code calls :func:`drain`. Setting the environment variable ``CELLIST_SYNC=1`` makes the widgets run
the same generators synchronously, for debugging.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from dataclasses import replace
from typing import TypeVar

from .types import Progress

logger = logging.getLogger(__name__)

T = TypeVar("T")

ProgressGen = Generator[Progress, None, T]


def drain(
    gen: Generator[Progress, None, T],
    on_progress: Callable[[Progress], None] | None = None,
) -> T:
    """Run a progress generator to the end and return its result.

    Parameters
    ----------
    gen : generator
        Yields Progress, returns the result.
    on_progress : callable, optional
        Called with every Progress (e.g. a tqdm bar update). Defaults to debug logging.
    """
    while True:
        try:
            progress = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_progress is not None:
            on_progress(progress)
        else:
            logger.debug("%d/%d %s", progress.step, progress.total, progress.message)


def relay(
    gen: Generator[Progress, None, T],
    on_progress: Callable[[Progress], None] | None = None,
    prefix: str = "",
) -> Generator[Progress, None, T]:
    """Re-yield a progress generator's reports and return its result (``yield from relay(...)``).

    Parameters
    ----------
    gen : generator
        Yields Progress, returns the result.
    on_progress : callable, optional
        Called with every report before it is passed on (e.g. ``history.append``).
    prefix : str
        Put in front of every report's message (e.g. ``"plane 2/5: "``).
    """
    while True:
        try:
            progress = next(gen)
        except StopIteration as stop:
            return stop.value
        if prefix:
            progress = replace(progress, message=prefix + progress.message)
        if on_progress is not None:
            on_progress(progress)
        yield progress

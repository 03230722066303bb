"""Pretrained weights on first use: a registry of downloadable files, verified and cached.

Each :class:`WeightsFile` names a file (URL, file name, checksum(s), size when known) and the
library whose cache convention decides its folder, so that the library's own tools find it:

* ``cellpose``: ``$CELLPOSE_LOCAL_MODELS_PATH`` or ``~/.cellpose/models``, under Cellpose's own
  file names (``cyto3``, ``nucleitorch_0``, ``size_cyto3.npy``...);
* ``sam``: ``$CELLIST_SAM_CACHE`` or ``~/.cache/napari-cellist/sam``, under the official names
  (``sam_vit_b_01ec64.pth``...);
* ``micro_sam``: ``$MICROSAM_CACHEDIR/models`` or micro-sam's ``pooch.os_cache("micro_sam")/models``,
  under micro-sam's names (``vit_b_lm``, ``vit_b_lm_decoder``...).

:func:`fetch` downloads with `pooch <https://www.fatiando.org/pooch>`_ into a temporary file in
the target folder, checks the size (when known) and the checksum, and only then renames it to its
final name: a partial, truncated or corrupt file is never used and is removed. A file already in
place is used without touching the network (it was verified when it was put there, or the user
put it there). ``CELLIST_OFFLINE=1`` never tries the network (the error says which file to get
from where and where to put it); ``CELLIST_MODEL_MIRROR=<base URL>`` fetches every file by its
file name from a mirror instead (checksums still apply).

Checksums: the SAM and micro-sam ones are those published by micro-sam (``micro_sam/util.py``:
xxh128, and sha256 for the official SAM files in its earlier registry). Cellpose publishes none
and its package records no sizes, so its files are checked only for completeness (the transfer's
``Content-Length``); their sha256 is logged after the download.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Generator
from pathlib import Path

from .types import Progress
from .weights_registry import (  # noqa: F401 - the registry's names are part of this API
    CELLPOSE_NAMES,
    CELLPOSE_SIZE_MODELS,
    CELLPOSE_URL,
    MICRO_SAM_MODELS,
    SAM_URL,
    WeightsFile,
    _build_registry,
    cellpose_filename,
    cellpose_size_filename,
    with_url,
)

logger = logging.getLogger(__name__)

OFFLINE_ENV = "CELLIST_OFFLINE"
MIRROR_ENV = "CELLIST_MODEL_MIRROR"
CELLPOSE_DIR_ENV = "CELLPOSE_LOCAL_MODELS_PATH"
SAM_DIR_ENV = "CELLIST_SAM_CACHE"
MICROSAM_DIR_ENV = "MICROSAM_CACHEDIR"
LIBRARIES = ("cellpose", "sam", "micro_sam")
DEFAULT_TIMEOUT_S = 30.0


class WeightsNotFoundError(FileNotFoundError):
    """Model weights are missing; the message says which file to obtain and where to put it."""


class DownloadError(WeightsNotFoundError):
    """A download failed or was refused (network, HTTP error, size or checksum); nothing was
    saved. The message says why, and where to get the file by hand."""


class DownloadCancelled(Exception):
    """The user stopped a download; its temporary file was removed."""


REGISTRY: dict[str, WeightsFile] = _build_registry()


def get_file(name: str) -> WeightsFile:
    """The registry entry ``name`` (``"cellpose/cyto3"``, ``"sam/vit_b"``, ``"micro_sam/vit_b_lm"``).

    Raises
    ------
    ValueError
        For an unknown name (the message lists the known ones of that library).
    """
    if name in REGISTRY:
        return REGISTRY[name]
    library = name.split("/", 1)[0]
    known = sorted(k for k in REGISTRY if k.startswith(library + "/")) or sorted(REGISTRY)
    raise ValueError(f"No downloadable weights named {name!r}; known: {', '.join(known)}.")


def cache_folder(library: str) -> Path:
    """The folder where ``library``'s weights live, by that library's convention (read now, so
    a changed environment variable applies at once).

    Raises
    ------
    ValueError
        For a library other than :data:`LIBRARIES`.
    """
    if library == "cellpose":
        env = os.environ.get(CELLPOSE_DIR_ENV)
        return Path(env) if env else Path.home() / ".cellpose" / "models"
    if library == "sam":
        env = os.environ.get(SAM_DIR_ENV)
        return Path(env) if env else Path.home() / ".cache" / "napari-cellist" / "sam"
    if library == "micro_sam":
        import pooch

        env = os.environ.get(MICROSAM_DIR_ENV)
        return Path(env or pooch.os_cache("micro_sam")) / "models"
    raise ValueError(f"Unknown weights library {library!r}; use one of {', '.join(LIBRARIES)}.")


def local_path(item: WeightsFile) -> Path:
    """Where ``item`` is (or will be) on this computer."""
    return cache_folder(item.library) / item.filename


def is_offline() -> bool:
    """Whether ``CELLIST_OFFLINE`` forbids the network (``1``, ``true``, ``yes``, ``on``)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def source_url(item: WeightsFile) -> str:
    """The URL to fetch ``item`` from: ``$CELLIST_MODEL_MIRROR/<file name>`` when a mirror is
    set, the publisher's URL otherwise."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    return f"{mirror.rstrip('/')}/{item.filename}" if mirror else item.url


def how_to_get(item: WeightsFile) -> str:
    """One sentence telling a person how to put the file in place by hand."""
    size = f" (about {item.approx_mb:.0f} MB)" if item.approx_mb else ""
    env = {"cellpose": CELLPOSE_DIR_ENV, "sam": SAM_DIR_ENV, "micro_sam": MICROSAM_DIR_ENV}
    return (
        f"Download '{item.filename}'{size} from {item.url} and put it into the folder "
        f"{cache_folder(item.library)} (or set {env[item.library]} to a folder holding it), "
        "or pick the file yourself."
    )


def find(name: str) -> Path | None:
    """The file of registry entry ``name`` if it is already on this computer, else None."""
    path = local_path(get_file(name))
    return path if path.is_file() else None


def fetch(
    name: str | WeightsFile,
    on_progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    progressbar: bool = False,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """The local file of a registry entry, downloaded and verified on first use.

    Parameters
    ----------
    name : str or WeightsFile
        Registry key or entry.
    on_progress : callable, optional
        ``on_progress(bytes_done, bytes_total)`` during the transfer (total 0 when unknown).
    cancel : threading.Event, optional
        Set it to stop the transfer (raises :class:`DownloadCancelled`; nothing is kept).
    progressbar : bool
        Show a tqdm bar on stderr (the command line).
    timeout : float
        Seconds to wait for the server to answer / send the next bytes.

    Returns
    -------
    Path
        The verified file in the library's cache folder.

    Raises
    ------
    WeightsNotFoundError
        Offline (``CELLIST_OFFLINE=1``) and the file is missing.
    DownloadError
        The transfer failed or the file was refused (HTTP error, connection refused or
        interrupted, size or checksum mismatch); nothing is left behind.
    DownloadCancelled
        ``cancel`` was set.
    """
    item = get_file(name) if isinstance(name, str) else name
    target = local_path(item)
    if target.is_file():
        return target
    if is_offline():
        raise WeightsNotFoundError(
            f"The weights '{item.name}' are not on this computer and {OFFLINE_ENV} is set, so "
            f"nothing is downloaded. {how_to_get(item)}"
        )
    return _download(item, target, _Bar(on_progress, cancel, progressbar, item.filename), timeout)


def _download(item: WeightsFile, target: Path, bar: _Bar, timeout: float) -> Path:
    import pooch
    import requests

    url = source_url(item)
    downloader = _CheckedDownloader(
        pooch.HTTPDownloader(progressbar=bar, timeout=timeout), item.size, bar
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        pooch.retrieve(
            url,
            known_hash=item.known_hash,
            fname=target.name,
            path=target.parent,
            downloader=downloader,
        )
    except DownloadCancelled:
        raise
    except (requests.exceptions.RequestException, ValueError, OSError) as err:
        raise DownloadError(
            f"Could not download '{item.name}' from {url}: {_reason(err)} Nothing was saved. "
            f"{how_to_get(item)}"
        ) from err
    finally:
        bar.close()
    size = target.stat().st_size
    logger.info(
        "Downloaded %s (%.1f MB in %.1f s) to %s",
        url,
        size / 1e6,
        time.perf_counter() - started,
        target,
    )
    return target


def _reason(err: Exception) -> str:
    import requests

    if isinstance(err, requests.exceptions.HTTPError) and err.response is not None:
        return f"the server answered HTTP {err.response.status_code} {err.response.reason}."
    if isinstance(err, requests.exceptions.ConnectionError):
        return f"no connection ({type(err).__name__}: {err})."
    if isinstance(err, requests.exceptions.Timeout):
        return "the server did not answer in time."
    if isinstance(err, ValueError) and "hash" in str(err).lower():
        return f"the file was refused because its checksum does not match ({err})."
    return f"{type(err).__name__}: {err}."


class _Bar:
    """The tqdm-like object pooch's ``HTTPDownloader`` drives: forwards bytes to a callback, a
    tqdm bar, and raises :class:`DownloadCancelled` when the cancel event is set."""

    def __init__(
        self,
        on_progress: Callable[[int, int], None] | None,
        cancel: threading.Event | None,
        progressbar: bool,
        label: str,
    ) -> None:
        self.total = 0
        self.done = 0
        self._on_progress = on_progress
        self._cancel = cancel
        self._tqdm = None
        if progressbar:
            from tqdm import tqdm

            self._tqdm = tqdm(total=0, unit="B", unit_scale=True, desc=label, leave=True)

    def update(self, count: int) -> None:
        if self._cancel is not None and self._cancel.is_set():
            raise DownloadCancelled("The download was stopped; nothing was saved.")
        self.done = min(self.done + int(count), self.total) if self.total else self.done + count
        if self._tqdm is not None:
            self._tqdm.total = self.total
            self._tqdm.n = self.done
            self._tqdm.refresh()
        if self._on_progress is not None:
            self._on_progress(self.done, self.total)

    def reset(self) -> None:
        self.done = 0

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None


class _CheckedDownloader:
    """pooch's HTTP downloader plus a size check of the temporary file (before the checksum)."""

    def __init__(self, inner: Callable, size: int | None, bar: _Bar) -> None:
        self._inner = inner
        self._size = size
        self._bar = bar

    def __call__(self, url: str, output_file: str, pooch: object, check_only: bool = False):
        result = self._inner(url, output_file, pooch, check_only=check_only)
        if check_only:
            return result
        got = Path(output_file).stat().st_size
        if self._size is not None and got != self._size:
            raise ValueError(f"received {got} bytes, expected {self._size} (incomplete transfer).")
        return result


def fetch_iter(
    name: str | WeightsFile, timeout: float = DEFAULT_TIMEOUT_S, interval_s: float = 0.1
) -> Generator[Progress, None, Path]:
    """:func:`fetch` as a progress generator (for a napari worker's progress bar and Stop).

    Yields Progress with ``step``/``total`` in kB at most every ``interval_s`` seconds; closing
    the generator (Stop) cancels the transfer and removes its temporary file.

    Returns
    -------
    Path
        The verified local file.
    """
    item = get_file(name) if isinstance(name, str) else name
    if local_path(item).is_file() or is_offline():
        return fetch(item)
    reports: queue.Queue[tuple[int, int]] = queue.Queue()
    cancel = threading.Event()
    outcome: dict[str, object] = {}

    def work() -> None:
        try:
            outcome["path"] = fetch(
                item, on_progress=lambda d, t: reports.put((d, t)), cancel=cancel, timeout=timeout
            )
        except BaseException as err:  # handed to the generator's thread
            outcome["error"] = err

    thread = threading.Thread(target=work, name=f"download {item.filename}", daemon=True)
    thread.start()
    label = f"downloading {item.filename}"
    try:
        yield Progress(0, 0, label)
        while thread.is_alive():
            thread.join(interval_s)
            latest = None
            while not reports.empty():
                latest = reports.get_nowait()
            if latest is not None:
                done, total = latest
                yield Progress(done // 1000, total // 1000, f"{label}: {_mb(done, total)}")
    finally:
        cancel.set()
        thread.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["path"]  # type: ignore[return-value]


def _mb(done: int, total: int) -> str:
    return f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"

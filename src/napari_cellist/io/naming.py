"""Safe, unique output file names inside one output folder.

Names of exported files come from image names, and image names come from users: a napari layer
name, a file name, or a row of a shared database. None of them may decide *where* a file is
written. :func:`safe_stem` turns any name into one portable file-name component (no separators,
no ``..``, no NUL or control characters, no Windows device names such as ``CON``), and
:func:`confined` refuses any path that would resolve outside the output folder. Two images with
the same name get distinct files through :func:`unique_stems` (``name``, ``name-2``, ...), so an
export never silently overwrites one image's file with another's.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

#: Characters that are separators or forbidden in file names on Windows, macOS or Linux.
_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
#: Windows device names: ``CON``, ``con.txt`` and ``COM1.tif`` all open the device.
_RESERVED = re.compile(r"^(CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³])(\..*)?$", re.IGNORECASE)
#: Longest stem in UTF-8 bytes, leaving room for a suffix such as ``-12_polygons.csv`` within
#: the 255-byte limit of common file systems.
MAX_STEM_BYTES = 200
FALLBACK_STEM = "image"


def safe_stem(name: str) -> str:
    """A portable file-name stem for ``name`` (the name without any folder part).

    Parameters
    ----------
    name : str
        Any image name: may hold ``/``, ``\\``, ``..``, NUL, control characters or be empty.

    Returns
    -------
    str
        ``name`` with forbidden characters replaced by ``_``, leading/trailing dots and spaces
        removed, a Windows device name (``CON``, ``NUL``, ``COM1``, ...) prefixed with ``_``,
        truncated to :data:`MAX_STEM_BYTES` UTF-8 bytes; :data:`FALLBACK_STEM` when nothing is
        left. Ordinary names (``crop0``, ``Cell 01 (DAPI)``) come back unchanged.

    Examples
    --------
    >>> safe_stem("../../etc/passwd")
    '_.._etc_passwd'
    >>> safe_stem("CON")
    '_CON'
    """
    text = unicodedata.normalize("NFC", str(name))
    text = _FORBIDDEN.sub("_", text).strip(" .")
    if _RESERVED.match(text):
        text = f"_{text}"
    encoded = text.encode("utf-8")[:MAX_STEM_BYTES]
    text = encoded.decode("utf-8", errors="ignore").rstrip(" .")
    return text or FALLBACK_STEM


def unique_stems(names: Sequence[str]) -> list[str]:
    """Safe stems for ``names``, made distinct in order: ``a``, ``a-2``, ``a-3``, ...

    Uniqueness ignores case (macOS and Windows file systems do), and a generated ``a-2`` never
    collides with an image actually named ``a-2``. The result depends only on ``names`` and
    their order, so repeated exports write the same files.

    Parameters
    ----------
    names : sequence of str
        Image names, in export order.

    Returns
    -------
    list of str
        One stem per name, pairwise distinct (case-insensitively).
    """
    stems = [safe_stem(n) for n in names]
    taken = {s.casefold() for s in stems if stems.count(s) == 1}
    seen: set[str] = set()
    out = []
    for stem in stems:
        candidate, k = stem, 1
        while candidate.casefold() in seen or (k > 1 and candidate.casefold() in taken):
            k += 1
            candidate = f"{stem}-{k}"
        seen.add(candidate.casefold())
        out.append(candidate)
    return out


def confined(out_dir: str | os.PathLike, file_name: str) -> Path:
    """``out_dir / file_name``, refusing any name that would land outside ``out_dir``.

    Parameters
    ----------
    out_dir : str or path-like
        The output folder (need not exist yet).
    file_name : str
        A single file-name component (use :func:`safe_stem` to build it).

    Returns
    -------
    Path
        The target path (``out_dir`` joined with ``file_name``, not resolved).

    Raises
    ------
    ValueError
        ``file_name`` is empty, holds a separator or NUL, is ``.``/``..``, or resolves (through
        symbolic links too) outside ``out_dir``.
    """
    if not file_name or file_name in (".", "..") or _FORBIDDEN.search(file_name):
        raise ValueError(f"Refusing to write {file_name!r}: not a plain file name.")
    target = Path(out_dir) / file_name
    root = Path(out_dir).resolve()
    if not target.resolve().is_relative_to(root):
        raise ValueError(
            f"Refusing to write {target}: it resolves outside the output folder {root}."
        )
    return target

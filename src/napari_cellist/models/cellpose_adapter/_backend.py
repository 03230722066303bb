"""The one place that knows which Cellpose is installed (the seam for Cellpose 4 / cpsam).

Cellpose 3.1.x ships the CPnet models (``cyto3``, ``nuclei``, custom) that run and train on a CPU.
Cellpose 4 replaced them by the transformer ``cpsam`` with a different API and weights format;
supporting it means a second adapter next to this one, selected here by the major version.
Nothing in this module imports torch or cellpose at import time.
"""

from __future__ import annotations

import importlib.util
from importlib import metadata
from types import ModuleType

SUPPORTED_MAJOR = 3
INSTALL_HINT = (
    "pip install 'napari-cellist[cellpose]' -c .ci/constraints.txt "
    "(installs cellpose>=3.1,<3.2 and keeps the pinned CPU torch)"
)


def cellpose_version() -> str:
    """Installed Cellpose version string.

    Raises
    ------
    ImportError
        When Cellpose is not installed (the message says how to install it).
    """
    if importlib.util.find_spec("cellpose") is None:
        raise ImportError(f"Cellpose is not installed. {INSTALL_HINT}")
    try:
        return metadata.version("cellpose")
    except metadata.PackageNotFoundError:  # importable but not pip-installed (source checkout)
        return str(getattr(importlib.import_module("cellpose.version"), "version", "0"))


def check_cellpose_version(version: str | None = None) -> str:
    """Check that a supported (3.x) Cellpose is installed; returns its version.

    Parameters
    ----------
    version : str, optional
        Version to check (default: the installed one).

    Raises
    ------
    ImportError
        For a missing Cellpose or an unsupported major version (Cellpose 4 / cpsam, Cellpose 2).
    """
    version = version or cellpose_version()
    major = int(version.split(".")[0]) if version.split(".")[0].isdigit() else 0
    if major == SUPPORTED_MAJOR:
        return version
    if major >= 4:
        raise ImportError(
            f"Cellpose {version} is installed; it replaced the CPnet models (cyto3, nuclei) by "
            "the cpsam transformer, which this adapter does not drive yet. Install Cellpose 3.1: "
            f"{INSTALL_HINT}"
        )
    raise ImportError(f"Cellpose {version} is too old; Cellpose 3.1 is needed. {INSTALL_HINT}")


def cellpose_modules() -> tuple[ModuleType, ModuleType, ModuleType, ModuleType]:
    """Import Cellpose lazily: ``(models, transforms, dynamics, utils)``."""
    check_cellpose_version()
    from cellpose import dynamics, models, transforms, utils

    return models, transforms, dynamics, utils

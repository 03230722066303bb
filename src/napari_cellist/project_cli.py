"""``cellist project add`` / ``cellist project status``: the project queue on the command line.

``cli.py`` only wires :func:`add_project_parser` into its sub-commands; the work is here.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .progress import drain
from .project_queue import SORT_KEYS, ProjectQueue, status_table

logger = logging.getLogger("napari_cellist.cli")


def cmd_project_add(args: argparse.Namespace) -> int:
    """Add image files and folders to a project; ``images/`` + ``masks/`` masks are committed.

    Exit code 0 when every file was added (or was already there), 1 when some failed, 2 when
    none could be added.
    """
    from tqdm import tqdm

    from .store import ProjectStore

    with ProjectStore(args.project) as store:
        queue = ProjectQueue(store)
        with tqdm(total=0, desc="add", disable=None, file=sys.stderr) as bar:

            def on_progress(progress) -> None:
                bar.total = progress.total
                bar.n = progress.step
                bar.set_postfix_str(progress.message, refresh=True)

            summary = drain(queue.add(args.paths), on_progress)
    for path, reason in summary.failed:
        sys.stderr.write(f"cellist project add: {path}: {reason}\n")
    sys.stdout.write(
        f"{summary.added} image(s) added, {summary.known} already in the project, "
        f"{summary.committed} mask(s) committed, {len(summary.failed)} failed\n"
    )
    if not summary.failed:
        return 0
    return 1 if summary.added or summary.known else 2


def cmd_project_status(args: argparse.Namespace) -> int:
    """Print one line per image of the project: name, status word, objects, model, ...

    The store is opened read-only: nothing is created or written.
    """
    from .store import ProjectStore

    with ProjectStore(args.project, read_only=True) as store:
        rows = ProjectQueue(store).rows(args.sort, args.descending)
    sys.stdout.write("".join(line + "\n" for line in status_table(rows)))
    return 0


def add_project_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``project`` command (``add``, ``status``) to ``cellist``'s sub-parsers."""
    project = sub.add_parser(
        "project",
        help="Work through a dataset: add images to a project, print its status table.",
        description=(
            "A project's images with their status (new / predicted / draft / committed). "
            "'add' adds image files and folders (an images/ + masks/ folder's masks become "
            "committed annotations); 'status' prints one line per image (name, status, "
            "objects, model, corrections, last change) and writes nothing."
        ),
    )
    actions = project.add_subparsers(dest="project_command", required=True)
    add = actions.add_parser("add", help="Add image files and folders to the project.")
    add.add_argument("paths", nargs="+", help="Image files or folders (images/ + masks/ too).")
    add.add_argument(
        "--project", required=True, help="Project folder, SQLite file or database URL."
    )
    add.set_defaults(func=cmd_project_add)
    status = actions.add_parser("status", help="Print the project's images and their status.")
    status.add_argument(
        "--project", required=True, help="Project folder, SQLite file or database URL."
    )
    status.add_argument("--sort", default="order", choices=SORT_KEYS, help="Column to sort by.")
    status.add_argument("--descending", action="store_true", help="Sort in descending order.")
    status.set_defaults(func=cmd_project_status)

"""Project panel: time from **Next** to a shown prediction, with and without prefetching.

The images of a shared folder (copied into a plain folder, so that their masks are not
imported as committed annotations) are added to a fresh project in a real napari viewer with
the Project panel. Then Next is pressed through every image, with the panel's jobs in napari's
worker threads as for a user:

* ``without``: "predict the next image ahead" off: Next predicts the image, then shows it;
* ``with``: on: while the current image is shown, the next one is predicted in the
  background (the benchmark waits for it, standing in for the user's editing time, and reports
  that wait as ``ahead_s``), so Next only loads and shows the stored prediction.

The latency is measured from the call of ``next_image()`` (what the button and Alt-N run) to
the moment the image's layers are in the viewer, Qt events processed meanwhile.

    xvfb-run -a python -m benchmarks.bench_project_panel [--folders coelho2009_u2os ...] \\
        [--model threshold] [--images 6]

Also the GUI-thread cost of one brush dab with live sync on (``LiveLink``: label map, index,
the object's outline in the Shapes layer and its centre in the Points layer) vs napari's paint
alone, on a grid of (``--edit-grid``)^2 square objects (``--edit-grid 0``: skip).

**Retraining in the background** (``--retrain-folder``): the GUI-thread stall while the
learning loop retrains the model (issue 19) and the user opens the next image. The first
``--retrain-committed`` images of the folder are added as committed (images/ + masks/), the rest
without annotations; one of those is opened, predicted and committed, which starts the
retraining (``--retrain-minutes`` budget) in its worker; 0.5 s later Next is pressed (the next
image is predicted in the panel's worker, then shown). A 10 ms QTimer on the GUI thread
records the gaps between its ticks, as ``bench_responsiveness`` does; the longest gap is the
longest stall. The same steps with the loop off are the reference run (``mode: reference``); ``thread`` runs
the retraining in a worker thread of the viewer's process instead of the panel's child process
(``process``), to show what the GIL shared with the viewer costs.

Prints a table and writes ``benchmarks/results/project_panel.json`` (``--only-retrain``: only
the retraining figure, in ``benchmarks/results/project_panel_retrain.json``).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks._data import data_folder, result_path

FOLDERS = ("coelho2009_u2os", "ctc_gowt1_hela")
#: Retraining modes: loop off, retraining in a child process (the panel), in a worker thread.
MODES = ("reference", "process", "thread")


def _process_until(done, timeout_s: float = 600.0) -> None:
    from qtpy.QtCore import QCoreApplication

    deadline = time.perf_counter() + timeout_s
    while not done():
        if time.perf_counter() > deadline:
            raise TimeoutError("the panel did not finish within the time limit")
        QCoreApplication.processEvents()
        time.sleep(0.001)


def run_folder(folder: Path, model: str, n_images: int, prefetch: bool) -> dict:
    """Next through ``n_images`` images of ``folder``; latencies in seconds."""
    import napari

    from napari_cellist._widgets._session import set_session
    from napari_cellist._widgets.project_panel import ProjectPanel
    from napari_cellist.session import LabellingSession

    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "plain"
        plain.mkdir()
        for path in sorted((folder / "images").iterdir())[:n_images]:
            shutil.copy(path, plain / path.name)
        viewer = napari.Viewer(show=False)
        set_session(viewer, LabellingSession(Path(tmp) / "project"))
        panel = ProjectPanel(viewer)
        panel.model.value = model
        panel.prefetch.value = prefetch
        panel.add_paths([str(plain)])
        _process_until(lambda: not panel.runner.busy)
        order = panel.order()
        latencies, ahead = [], []
        for target in order:
            start = time.perf_counter()
            _process_until(lambda: not panel.prefetcher.busy)  # the user's editing time
            ahead.append(time.perf_counter() - start)
            start = time.perf_counter()
            panel.next_image()
            _process_until(
                lambda target=target: (
                    panel.current is not None
                    and panel.current.image_id == target
                    and not panel.runner.busy
                )
            )
            latencies.append(time.perf_counter() - start)
        panel.drafts.close()
        viewer.close()
        panel.session.close()
    return {
        "folder": folder.name,
        "prefetch": prefetch,
        "images": len(order),
        "next_to_shown_s": latencies,
        "median_s": statistics.median(latencies),
        "max_s": max(latencies),
        "ahead_s": ahead,
    }


def edit_latency(n_side: int, n_dabs: int = 30, cell: int = 28) -> dict:
    """Milliseconds per brush dab growing an object, with and without live sync."""
    import napari
    import numpy as np

    from napari_cellist._widgets._live import LiveLink
    from napari_cellist.layers import labels_to_layer_tuples, set_layers

    n = n_side * n_side
    labels = np.zeros((cell * n_side, cell * n_side), np.int32)
    for k in range(n):
        r, c = divmod(k, n_side)
        labels[cell * r + 4 : cell * r + 22, cell * c + 4 : cell * c + 22] = k + 1
    viewer = napari.Viewer(show=False)
    layers = set_layers(viewer, labels_to_layer_tuples(labels, {}, "grid"))
    layer = layers[0]
    layer.brush_size = 6

    def dabs(step: int) -> list[float]:
        times = []
        for k in range(n_dabs):
            label = (k * step) % n
            r, c = divmod(label, n_side)
            start = time.perf_counter()
            layer.paint((cell * r + 22, cell * c + 12), label + 1)
            times.append(1e3 * (time.perf_counter() - start))
        return times

    # layers updated within each dab (the panel defers them to the stroke end: see
    # bench_live_edit, which measures both)
    link = LiveLink(*layers, defer_ms=0)
    live = dabs(37)
    link.disconnect()
    alone = dabs(41)
    viewer.close()
    return {
        "objects": n,
        "image": list(labels.shape),
        "live_ms": live,
        "napari_alone_ms": alone,
        "live_median_ms": statistics.median(live),
        "napari_alone_median_ms": statistics.median(alone),
    }


def _plain_and_labelled(folder: Path, tmp: Path, n_committed: int, n_images: int) -> list[Path]:
    """Copy the first ``n_committed`` images of ``folder`` with their masks (committed when
    added) and the next ones without (to predict); the two folders to add."""
    labelled, plain = tmp / "labelled", tmp / "plain"
    for sub in (labelled / "images", labelled / "masks", plain):
        sub.mkdir(parents=True)
    for k, path in enumerate(sorted((folder / "images").iterdir())[:n_images]):
        if k < n_committed:
            shutil.copy(path, labelled / "images" / path.name)
            shutil.copy(folder / "masks" / path.name, labelled / "masks" / path.name)
        else:
            shutil.copy(path, plain / path.name)
    return [labelled, plain]


def retrain_stall(folder: Path, model: str, minutes: float, n_committed: int, mode: str) -> dict:
    """Longest GUI stall while Next opens an image, with the learning loop retraining ``model``
    in the background (``mode``: ``"process"``, as the panel does, or ``"thread"``, in a worker
    thread of the viewer's process) or off (``"reference"``)."""
    import napari
    import numpy as np
    from qtpy.QtCore import QTimer

    from napari_cellist import learning_loop
    from napari_cellist._widgets import project_process as process
    from napari_cellist._widgets._session import set_session
    from napari_cellist._widgets.project_panel import ProjectPanel
    from napari_cellist.session import LabellingSession

    in_child = process.retrain_job
    with tempfile.TemporaryDirectory() as tmp:
        paths = _plain_and_labelled(folder, Path(tmp), n_committed, n_committed + 2)
        viewer = napari.Viewer(show=True)
        set_session(viewer, LabellingSession(Path(tmp) / "project"))
        panel = ProjectPanel(viewer)
        panel.model.value = model
        panel.prefetch.value = False  # Next predicts the image: work that meets the retraining
        panel.learning.model.value = model
        panel.learning.minutes.value = minutes
        panel.learning.auto.value = mode != "reference"
        if mode == "thread":  # retrain() in the runner's worker thread (the panel before)
            process.retrain_job = lambda store, settings: (
                lambda: learning_loop.retrain(store, settings)
            )
        panel.add_paths([str(p) for p in paths])
        _process_until(lambda: not panel.runner.busy)
        first, second = [i for i in panel.order() if panel.row_of(i)["status"] == "new"][:2]
        panel.open(first)
        _process_until(lambda: panel.current is not None and not panel.runner.busy)
        ticks: list[float] = []
        timer = QTimer()
        timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
        timer.start(10)
        start = time.perf_counter()
        panel.commit()  # starts the retraining when the loop is on
        _process_until(lambda: not panel.runner.busy)
        retraining = panel.learning.runner.busy
        _process_until(lambda: time.perf_counter() - start > 0.5)
        opened_at = time.perf_counter()
        running_at_next = panel.learning.runner.busy
        panel.open(second)
        _process_until(
            lambda: (
                panel.current is not None
                and panel.current.image_id == second
                and not panel.runner.busy
            )
        )
        shown_at = time.perf_counter()
        running_when_shown = panel.learning.runner.busy
        _process_until(lambda: not panel.learning.runner.busy)
        ended_at = time.perf_counter()
        timer.stop()
        times = np.array(ticks)
        gaps = np.diff(times) * 1e3
        during_open = gaps[(times[1:] >= opened_at) & (times[:-1] <= shown_at)]
        worst = int(np.argmax(gaps))
        outcome = panel.learning.outcome
        process.retrain_job = in_child
        panel.drafts.close()
        viewer.close()
        panel.session.close()
    return {
        "folder": folder.name,
        "mode": mode,
        "model": model,
        "minutes": minutes,
        "committed_before": n_committed,
        "retraining_started": retraining,
        "retraining_running_at_next": running_at_next,
        "retraining_running_when_shown": running_when_shown,
        "next_to_shown_s": shown_at - opened_at,
        "max_stall_open_ms": float(during_open.max()),
        "max_stall_ms": float(gaps.max()),
        "max_stall_from_next_s": float(times[worst] - opened_at),  # < 0: before Next
        "p95_gap_ms": float(np.percentile(gaps, 95)),
        "measured_s": ended_at - start,
        "accepted": None if outcome is None else bool(outcome.accepted),
        "reason": None if outcome is None else outcome.reason,
    }


def _retrain_runs(args: argparse.Namespace) -> list[dict]:
    folder = data_folder(args.retrain_folder)
    runs = [  # alternated, so that the machine's load falls on both modes alike
        retrain_stall(folder, args.model, args.retrain_minutes, args.retrain_committed, mode)
        for _ in range(args.repeats)
        for mode in MODES
    ]
    print("| mode | next -> shown (s) | longest stall opening (ms) | longest stall (ms) |")
    print("|---|---|---|---|")
    for r in runs:
        print(
            f"| {r['mode']} | {r['next_to_shown_s']:.2f} | {r['max_stall_open_ms']:.0f} | "
            f"{r['max_stall_ms']:.0f} |"
        )
    return runs


def _medians(runs: list[dict]) -> dict:
    """Median next -> shown and longest stalls per mode, and their ratios to the reference."""
    out = {}
    for mode in MODES:
        rows = [r for r in runs if r["mode"] == mode]
        out[mode] = {
            key: statistics.median(r[key] for r in rows)
            for key in ("next_to_shown_s", "max_stall_open_ms", "max_stall_ms")
        }
    out["ratio_to_reference"] = {
        mode: {k: out[mode][k] / out["reference"][k] for k in out["reference"]}
        for mode in MODES[1:]
    }
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folders", nargs="+", default=list(FOLDERS))
    parser.add_argument("--model", default="threshold")
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--edit-grid", type=int, default=32, help="objects per side; 0: skip")
    parser.add_argument("--retrain-folder", default="coelho2009_u2os")
    parser.add_argument("--retrain-minutes", type=float, default=0.25)
    parser.add_argument("--retrain-committed", type=int, default=3)
    parser.add_argument("--only-retrain", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each retraining mode")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.only_retrain:
        result = {
            "benchmark": "project_panel_retrain",
            "machine": platform.platform(),
            "retrain": _retrain_runs(args),
        }
        result["medians"] = _medians(result["retrain"])
        print(json.dumps(result["medians"], indent=2))
        path = result_path("project_panel_retrain.json")
        path.write_text(json.dumps(result, indent=2))
        print(f"written {path}")
        return result
    runs = []
    for name in args.folders:
        folder = data_folder(name)
        for prefetch in (False, True):
            runs.append(run_folder(folder, args.model, args.images, prefetch))
    print(f"{'folder':<20} {'prefetch':<9} {'images':>6} {'median s':>9} {'max s':>7}")
    for r in runs:
        print(
            f"{r['folder']:<20} {'with' if r['prefetch'] else 'without':<9} {r['images']:>6} "
            f"{r['median_s']:>9.3f} {r['max_s']:>7.3f}"
        )
    edits = edit_latency(args.edit_grid) if args.edit_grid else None
    if edits is not None:
        print(
            f"one brush dab, {edits['objects']} objects: {edits['live_median_ms']:.1f} ms median "
            f"with live sync, {edits['napari_alone_median_ms']:.1f} ms napari alone"
        )
    result = {
        "benchmark": "project_panel",
        "model": args.model,
        "machine": platform.platform(),
        "runs": runs,
        "edit_latency": edits,
        "retrain": _retrain_runs(args),
    }
    path = result_path("project_panel.json")
    path.write_text(json.dumps(result, indent=2))
    print(f"written {path}")
    return result


if __name__ == "__main__":
    main()

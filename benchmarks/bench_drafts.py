"""Drafts: write latency, and the crash test (an editor killed with SIGKILL at random moments).

1. Latency: a 2048 x 2048 label map of 1k / 5k objects (the live-sync benchmark's discs) with
   its outlines saved as a draft in one transaction (SQLite), the same without outlines,
   ``DraftWriter.submit`` with the copy of the label map (what the GUI thread pays per edit)
   and the bare reference: ``pack_pixels`` of the label map alone (zlib level 6). Then the
   longest stall of a 1 ms ticker on the main thread (the GUI thread's stand-in) while the
   writer saves drafts every 0.25 s, vs the bare ticker.
2. Crash test: an editor process (``--editor``, below) adds an image, starts a
   :class:`~napari_cellist.drafts.DraftWriter` and paints edit k = 1, 2, ... (object k in cell k
   of a grid), submitting a copy after each, every 5-30 ms; it is killed with SIGKILL at a
   random moment 0.3-2.5 s after it is ready. The store is reopened and the draft's edits are
   compared with the editor's log: every edit older than the draft interval (plus a write) must
   be there. Reports kills / edits made / edits recovered / the oldest lost edit.

    python -m benchmarks.bench_drafts [--trials 20] [--interval 1.0]

Prints a table and writes ``benchmarks/results/drafts.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from benchmarks._data import REPO_ROOT, result_path

SIZE, CELL = 512, 32
CELLS_PER_ROW = SIZE // CELL


# -- the editor (child process) ------------------------------------------------------------------
def cell(k: int) -> tuple[slice, slice]:
    """Pixels of edit ``k`` (1-based; 256 cells, then they are painted over again)."""
    r, c = divmod((k - 1) % (CELLS_PER_ROW**2), CELLS_PER_ROW)
    return slice(r * CELL + 2, (r + 1) * CELL - 2), slice(c * CELL + 2, (c + 1) * CELL - 2)


def recovered_edits(labels: np.ndarray) -> set[int]:
    """The edits a label map holds: object k filling its cell."""
    return {int(i) for i in np.unique(labels) if i and (labels[cell(int(i))] == i).all()}


def editor(store_path: str, log_path: str, interval_s: float, seed: int) -> None:
    """Edit one image forever, submitting each state to a DraftWriter; log ``k time``."""
    from napari_cellist.drafts import DraftWriter
    from napari_cellist.store import DraftSnapshot, ProjectStore

    rng = np.random.default_rng(seed)
    store = ProjectStore(store_path)
    image_id = store.add_image(np.full((SIZE, SIZE), seed % 200, np.uint8)).id
    writer = DraftWriter(store, interval_s=interval_s)
    labels = np.zeros((SIZE, SIZE), np.int32)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(log, f"ready {image_id}\n".encode())
    k = 0
    while True:
        k += 1
        labels[cell(k)] = k
        writer.submit(image_id, DraftSnapshot(labels.copy(), n_edits=k))
        os.write(log, f"{k} {time.time():.6f}\n".encode())
        time.sleep(rng.uniform(0.005, 0.03))


# -- the crash test -------------------------------------------------------------------------------
@dataclass(frozen=True)
class CrashTrial:
    """One kill: edits made, recovered, required (older than interval + allowance), lost."""

    seed: int
    kill_after_s: float
    made: int
    recovered: int
    required: int
    lost_required: int
    oldest_lost_age_s: float | None


def crash_trial(
    folder: Path, interval_s: float, seed: int, allowance_s: float = 0.5, startup_s: float = 60
) -> CrashTrial:
    """Run the editor, SIGKILL it at a random moment, reopen the store and count the edits.

    ``required`` edits are those made more than ``interval_s + allowance_s`` before the kill
    (the allowance covers one write of the draft on a busy machine).
    """
    from napari_cellist.store import ProjectStore

    rng = np.random.default_rng(seed)
    store_path, log_path = folder / f"store-{seed}", folder / f"edits-{seed}.log"
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_drafts",
            "--editor",
            str(store_path),
            str(log_path),
            str(interval_s),
            str(seed),
        ],
        cwd=REPO_ROOT,
    )
    try:
        deadline = time.monotonic() + startup_s
        while not (log_path.exists() and log_path.read_text().startswith("ready")):
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the editor did not start (exit code {child.poll()})")
            time.sleep(0.02)
        kill_after = float(rng.uniform(0.3, 2.5))
        time.sleep(kill_after)
        killed_at = time.time()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    lines = log_path.read_text().splitlines()
    image_id = int(lines[0].split()[1])
    edits = {
        int(k): float(t) for k, t in (line.split() for line in lines[1:] if line.count(" ") == 1)
    }
    with ProjectStore(store_path, read_only=True) as store:
        stored = store.load_draft(image_id)
    found = set() if stored is None else recovered_edits(stored.snapshot.labels)
    required = {k for k, t in edits.items() if t < killed_at - interval_s - allowance_s}
    lost = {k for k in edits if k not in found}
    oldest = min((edits[k] for k in lost), default=None)
    return CrashTrial(
        seed,
        kill_after,
        len(edits),
        len(found & set(edits)),
        len(required),
        len(required - found),
        None if oldest is None else killed_at - oldest,
    )


# -- latency --------------------------------------------------------------------------------------
def latency(n_objects: int, folder: Path, repeats: int = 5) -> dict:
    from benchmarks.bench_live_sync import disc_map
    from napari_cellist.drafts import DraftWriter
    from napari_cellist.live_sync import full_sync
    from napari_cellist.store import DraftSnapshot, ProjectStore
    from napari_cellist.store.pixels import pack_pixels

    labels = disc_map(2048, n_objects)
    polygons = full_sync(labels).polygons
    with ProjectStore(folder / f"latency-{n_objects}") as store:
        image_id = store.add_image(np.zeros(labels.shape, np.uint8)).id
        snapshot = DraftSnapshot(labels, polygons, n_edits=1)

        def timed(call) -> float:
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
            return float(np.median(times)) * 1000

        bare = timed(lambda: pack_pixels(labels))
        save = timed(lambda: store.save_draft(image_id, snapshot))
        labels_only = timed(lambda: store.save_draft(image_id, DraftSnapshot(labels)))
        copy = timed(lambda: labels.copy())
        writer = DraftWriter(store, interval_s=1.0)
        submit = timed(lambda: writer.submit(image_id, DraftSnapshot(labels.copy(), polygons)))
        writer.close()
        stall_bare = main_thread_stall(None, image_id, labels, None)
        stall_labels = main_thread_stall(store, image_id, labels, None)
        stall_outlines = main_thread_stall(store, image_id, labels, polygons)
    return {
        "objects": n_objects,
        "bare_compress_ms": bare,
        "save_draft_ms": save,
        "save_over_bare": save / bare,
        "save_labels_only_ms": labels_only,
        "copy_ms": copy,
        "submit_with_copy_ms": submit,
        "stall_bare_ms": stall_bare,
        "stall_writing_labels_ms": stall_labels,
        "stall_writing_outlines_ms": stall_outlines,
    }


def main_thread_stall(store, image_id: int, labels, polygons, seconds: float = 3.0) -> float:
    """Longest gap (ms) of a 1 ms ticker on this thread while a DraftWriter saves a draft
    every 0.25 s in the background (store None: the bare ticker). The GIL is what a writer
    thread can take from the GUI thread; this measures it."""
    from napari_cellist.drafts import DraftWriter
    from napari_cellist.store import DraftSnapshot

    writer = None if store is None else DraftWriter(store, interval_s=0.25)
    count = len(polygons) if polygons else None  # as a viewer knows it from its LabelIndex
    ticks = [time.perf_counter()]
    end = ticks[0] + seconds
    n = 0
    while ticks[-1] < end:
        if writer is not None and n % 50 == 0:
            writer.submit(image_id, DraftSnapshot(labels, polygons, n_edits=n, n_objects=count))
        n += 1
        time.sleep(0.001)
        ticks.append(time.perf_counter())
    if writer is not None:
        writer.close()
    return float(np.diff(ticks).max() * 1000)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="Kills (0: latency only).")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--objects", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--out", default=str(result_path("drafts.json")))
    parser.add_argument("--editor", nargs=4, metavar=("STORE", "LOG", "INTERVAL", "SEED"))
    args = parser.parse_args(argv)
    if args.editor:
        store, log, interval, seed = args.editor
        editor(store, log, float(interval), int(seed))
        return
    with tempfile.TemporaryDirectory() as tmp:
        rows = [latency(n, Path(tmp)) for n in args.objects]
        trials = [crash_trial(Path(tmp), args.interval, seed) for seed in range(args.trials)]
    print(
        f"{'objects':>8} {'compress ms':>12} {'save draft ms':>14} {'save/bare':>10} "
        f"{'labels only ms':>15} {'copy ms':>8} {'submit ms':>10}"
    )
    for r in rows:
        print(
            f"{r['objects']:>8} {r['bare_compress_ms']:>12.1f} {r['save_draft_ms']:>14.1f} "
            f"{r['save_over_bare']:>9.1f}x {r['save_labels_only_ms']:>15.1f} {r['copy_ms']:>8.2f} "
            f"{r['submit_with_copy_ms']:>10.2f}"
        )
    print(
        f"{'objects':>8} {'longest stall of the main thread (ms): bare':>44} "
        f"{'writing labels':>15} {'writing labels + outlines':>26}"
    )
    for r in rows:
        print(
            f"{r['objects']:>8} {r['stall_bare_ms']:>44.1f} {r['stall_writing_labels_ms']:>15.1f} "
            f"{r['stall_writing_outlines_ms']:>26.1f}"
        )
    made = sum(t.made for t in trials)
    recovered = sum(t.recovered for t in trials)
    required = sum(t.required for t in trials)
    lost_required = sum(t.lost_required for t in trials)
    oldest = max([t.oldest_lost_age_s or 0.0 for t in trials], default=0.0)
    print(
        f"crash test (interval {args.interval} s): {len(trials)} kills, {made} edits made, "
        f"{recovered} recovered, {required} older than interval + 0.5 s of which "
        f"{lost_required} lost; oldest lost edit {oldest:.2f} s before the kill"
    )
    summary = {
        "kills": len(trials),
        "edits_made": made,
        "edits_recovered": recovered,
        "edits_required": required,
        "required_lost": lost_required,
        "oldest_lost_age_s": oldest,
        "interval_s": args.interval,
        "load_average_1min": os.getloadavg()[0],
    }
    with open(args.out, "w") as handle:
        json.dump(
            {"latency": rows, "crash": summary, "trials": [asdict(t) for t in trials]},
            handle,
            indent=2,
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

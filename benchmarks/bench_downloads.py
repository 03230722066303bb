"""Weights on first use: time to the first prediction with a clean cache and with a warm one.

A local HTTP server (127.0.0.1, started here) stands in for the publishers through
``CELLIST_MODEL_MIRROR``; it serves

* a Cellpose 3 network with random weights under Cellpose's name ``cyto3`` (the real
  architecture, so the real file size), predicted on a 256 x 256 DSB2018 crop;
* a raw file of ``--raw-mb`` MB (random bytes, xxh128-verified like micro-sam's files) to state
  the downloader's throughput (transfer + checksum + rename).

Run::

    python -m benchmarks.bench_downloads

Writes ``benchmarks/results/downloads.json``.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import tifffile

from benchmarks._data import data_folder, result_path
from napari_cellist import downloads
from napari_cellist.progress import drain


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = lambda *a, **k: _Files(*a, directory=str(folder), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _cellpose_first_prediction(image: np.ndarray) -> float:
    import napari_cellist.models.cellpose_adapter as cpa

    model = cpa.CellposeModel(cpa.CellposeParams(model="cyto3", diameter=17.0, device="cpu"))
    start = time.perf_counter()
    drain(model.predict_iter(image))
    return time.perf_counter() - start


def run(raw_mb: int) -> dict:
    import xxhash

    from napari_cellist.models.cellpose_adapter.weights import build_network

    dsb = data_folder("dsb2018_stardist")
    image = tifffile.imread(sorted((dsb / "images").glob("*.tif"))[0]).astype(np.float32)
    image = image[:256, :256]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        served = tmp / "served"
        served.mkdir()
        build_network(None).net.save_model(str(served / "cyto3"))
        raw = np.random.default_rng(0).bytes(raw_mb * 1_000_000)
        (served / "raw.bin").write_bytes(raw)
        server, base = _serve(served)
        os.environ.update(
            CELLIST_MODEL_MIRROR=base,
            CELLPOSE_LOCAL_MODELS_PATH=str(tmp / "cellpose"),
            CELLIST_SAM_CACHE=str(tmp / "sam"),
        )
        os.environ.pop("CELLIST_OFFLINE", None)
        try:
            cyto3_mb = (served / "cyto3").stat().st_size / 1e6
            start = time.perf_counter()
            downloads.fetch("cellpose/cyto3")
            cyto3_s = time.perf_counter() - start
            (tmp / "cellpose" / "cyto3").unlink()  # clean cache again for the prediction
            clean = _cellpose_first_prediction(image)
            warm = _cellpose_first_prediction(image)
            item = downloads.WeightsFile(
                "sam/raw",
                f"{base}/raw.bin",
                "raw.bin",
                "sam",
                (f"xxh128:{xxhash.xxh128(raw).hexdigest()}",),
                len(raw),
            )
            start = time.perf_counter()
            downloads.fetch(item)
            raw_s = time.perf_counter() - start
            start = time.perf_counter()
            downloads.fetch(item)
            cached_s = time.perf_counter() - start
        finally:
            server.shutdown()
    return {
        "cellpose_cyto3": {
            "file_mb": cyto3_mb,
            "download_s": cyto3_s,
            "image": list(image.shape),
            "first_prediction_clean_cache_s": clean,
            "first_prediction_warm_cache_s": warm,
        },
        "raw": {
            "file_mb": raw_mb,
            "fetch_s": raw_s,
            "throughput_mb_s": raw_mb / raw_s,
            "cached_fetch_s": cached_s,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-mb", type=int, default=200, help="Size of the raw test file.")
    result = run(parser.parse_args().raw_mb)
    cp, raw = result["cellpose_cyto3"], result["raw"]
    rows = [
        (f"Cellpose cyto3 ({cp['file_mb']:.1f} MB): download only", cp["download_s"]),
        ("Cellpose cyto3: first prediction, clean cache", cp["first_prediction_clean_cache_s"]),
        ("Cellpose cyto3: first prediction, warm cache", cp["first_prediction_warm_cache_s"]),
        (f"raw {raw['file_mb']} MB fetch (xxh128, rename)", raw["fetch_s"]),
        ("raw file again (cache, no network)", raw["cached_fetch_s"]),
    ]
    print(f"{'case':48} {'seconds':>9}")
    for label, seconds in rows:
        print(f"{label:48} {seconds:>9.4f}")
    print(f"throughput of the raw fetch: {raw['throughput_mb_s']:.0f} MB/s")
    path = result_path("downloads.json")
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

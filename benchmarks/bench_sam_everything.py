"""Segment everything at a sane cost: the planned tiling vs the bare SamAutomaticMaskGenerator.

On the Coelho 2009 U2OS image ``u2os_dna-0.tif`` (1030 x 1349, the image of issue 20) with a
random-weight SAM (no weights can be downloaded here, so masks are meaningless and only times
are compared), this measures

* ``planned``: ``SamModel.predict_iter`` (tile grid and prompt grid sized to the image and the
  object diameter, embedding included), with the estimate it announced before starting;
* ``bare``: ``SamAutomaticMaskGenerator(sam).generate(image)`` with its defaults (32 x 32 points on
  the whole image resized to the model's input), embedding included;
* ``old``: the previous behaviour (tiles of the model's input size, 32 x 32 points each), timed on
  its first tiles and extrapolated to all of them (it did not finish in 15 minutes).

Run::

    python -m benchmarks.bench_sam_everything            # tiny SAM (128 px input)
    python -m benchmarks.bench_sam_everything --vit-b    # also a vit_b-size SAM (slow on a CPU)

Writes ``benchmarks/results/sam_everything.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

from benchmarks._data import data_folder, result_path
from napari_cellist.diameters import diameter_from_labels
from napari_cellist.models.sam import automatic
from napari_cellist.models.sam.architecture import write_random_checkpoint
from napari_cellist.models.sam.imaging import to_uint8_rgb
from napari_cellist.models.sam.interactive import PromptableSegmenter
from napari_cellist.models.sam.model import SamModel
from napari_cellist.models.sam.params import SamParams
from napari_cellist.models.sam.torchvision_compat import load_segment_anything
from napari_cellist.progress import drain

IMAGE = "coelho2009_u2os/images/u2os_dna-0.tif"


def _vit_b_checkpoint(folder: Path) -> Path:
    sam = load_segment_anything().sam_model_registry["vit_b"](checkpoint=None)
    path = folder / "vit_b_random.pth"
    torch.save(sam.state_dict(), path)
    return path


def time_planned(checkpoint: Path, image: np.ndarray, diameter: float) -> dict:
    params = SamParams(
        checkpoint=str(checkpoint), device="cpu", diameter=diameter, disk_cache=False
    )
    model = SamModel(params)
    segmenter = drain(model.load_iter())
    plan = model.plan(image, params, False, segmenter.sam)
    start = time.perf_counter()
    prediction = drain(model.predict_iter(image))
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "estimated_s": plan.seconds,
        "tiles": plan.n_tiles,
        "tile_size": plan.tile_size,
        "points_per_side": plan.points_per_side,
        "prompts": plan.prompts,
        "objects": prediction.count,
    }


def time_bare(checkpoint: Path, image: np.ndarray) -> dict:
    from napari_cellist.models.sam.weights import load_sam

    sam, _ = load_sam(checkpoint)
    generator = load_segment_anything().SamAutomaticMaskGenerator(sam)
    rgb = to_uint8_rgb(image, False)
    start = time.perf_counter()
    masks = generator.generate(rgb)
    return {"seconds": time.perf_counter() - start, "prompts": 32 * 32, "objects": len(masks)}


def time_old(checkpoint: Path, image: np.ndarray, tiles_timed: int) -> dict:
    """The previous layout: tiles of the model's input size, 32 x 32 points per tile."""
    from napari_cellist.models.sam.embeddings import tile_grid
    from napari_cellist.models.sam.weights import load_sam

    sam, model_id = load_sam(checkpoint)
    size = int(sam.image_encoder.img_size)
    n_tiles = len(tile_grid(image.shape, size, min(128, size // 2)))
    segmenter = PromptableSegmenter(sam, model_id, overlap=128)
    crop = image[: size * 2, : size * 2]  # enough for a few tiles
    start = time.perf_counter()
    drain(segmenter.set_image_iter(crop))
    embedding = segmenter.embedding
    timed = min(tiles_timed, len(embedding.tiles))
    segmenter.embedding = type(embedding)(
        embedding.key, embedding.image_shape, embedding.tiles[:timed]
    )
    drain(automatic.segment_everything_iter(segmenter, automatic.AutomaticParams()))
    elapsed = time.perf_counter() - start
    per_tile = elapsed / timed
    return {
        "tiles": n_tiles,
        "tiles_timed": timed,
        "seconds_per_tile": per_tile,
        "extrapolated_s": per_tile * n_tiles,
    }


def run(vit_b: bool, tiles_timed: int) -> dict:
    torch.set_num_threads(2)
    folder = data_folder("coelho2009_u2os")
    image = tifffile.imread(folder.parent / IMAGE)
    mask = tifffile.imread(folder.parent / IMAGE.replace("images", "masks"))
    diameter = float(diameter_from_labels([mask.astype(np.int32)]))
    out = {
        "image": IMAGE,
        "shape": list(image.shape),
        "diameter_px": diameter,
        "machine": f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}",
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        checkpoints = {"tiny": write_random_checkpoint(Path(tmp) / "tiny.pth")}
        if vit_b:
            checkpoints["vit_b"] = _vit_b_checkpoint(Path(tmp))
        for name, checkpoint in checkpoints.items():
            row = {
                "planned": time_planned(checkpoint, image, diameter),
                "bare": time_bare(checkpoint, image),
            }
            if name == "tiny":
                row["old"] = time_old(checkpoint, image, tiles_timed)
            row["planned_over_bare"] = row["planned"]["seconds"] / row["bare"]["seconds"]
            row["estimate_over_measured"] = (
                row["planned"]["estimated_s"] / row["planned"]["seconds"]
            )
            out["models"][name] = row
    return out


def print_table(result: dict) -> None:
    print(
        f"{result['image']} {tuple(result['shape'])}, object diameter {result['diameter_px']:.1f} px"
    )
    print(f"{'model':8} {'mode':8} {'tiles':>6} {'prompts':>8} {'seconds':>9} {'estimate':>9}")
    for name, row in result["models"].items():
        p, b = row["planned"], row["bare"]
        print(
            f"{name:8} {'planned':8} {p['tiles']:>6} {p['prompts']:>8} {p['seconds']:>9.1f} {p['estimated_s']:>9.1f}"
        )
        print(f"{name:8} {'bare':8} {1:>6} {b['prompts']:>8} {b['seconds']:>9.1f} {'':>9}")
        if "old" in row:
            o = row["old"]
            print(
                f"{name:8} {'old':8} {o['tiles']:>6} {o['tiles'] * 1024:>8} {o['extrapolated_s']:>9.1f} (extrapolated from {o['tiles_timed']} tiles)"
            )
        print(
            f"{name:8} planned/bare = {row['planned_over_bare']:.2f}, estimate/measured = {row['estimate_over_measured']:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vit-b", action="store_true", help="Also a vit_b-size random SAM.")
    parser.add_argument("--tiles-timed", type=int, default=3, help="Tiles of the old layout timed.")
    args = parser.parse_args()
    result = run(args.vit_b, args.tiles_timed)
    print_table(result)
    path = result_path("sam_everything.json")
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""Segment Anything benchmark: prompt latency vs the bare SamPredictor, embedding times, cache.

No SAM weights can be downloaded here, so the models carry random weights: timings are those of
the real architectures (vit_b: 1024 px input, 12 blocks, 768 channels) but the masks are
meaningless, so no accuracy is reported. Run::

    python -m benchmarks.bench_sam            # vit_b-size + tiny, writes benchmarks/results/sam.json

Prompts are the centres (points) and boxes of the ground-truth nuclei of the DSB2018 image.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import tifffile
import torch

from benchmarks._data import data_folder, result_path
from napari_cellist.geometry import bounding_boxes, centres
from napari_cellist.models.sam.architecture import TINY_CONFIG, SamConfig, write_random_checkpoint
from napari_cellist.models.sam.embeddings import EmbeddingCache
from napari_cellist.models.sam.imaging import to_uint8_rgb
from napari_cellist.models.sam.interactive import PromptableSegmenter
from napari_cellist.models.sam.prompts import box_to_xyxy, rc_to_xy
from napari_cellist.models.sam.torchvision_compat import (
    batched_nms,
    compat_mode,
    load_segment_anything,
)
from napari_cellist.models.sam.weights import load_sam

VIT_B = SamConfig(
    encoder_embed_dim=768,
    encoder_depth=12,
    encoder_num_heads=12,
    encoder_global_attn_indexes=(2, 5, 8, 11),
)


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def prompt_latency(seg, image, prompts, repeats):
    """Median ms of plugin predict vs bare SamPredictor.predict, interleaved, same prompts."""
    bare = load_segment_anything().SamPredictor(seg.sam)
    bare.set_image(to_uint8_rgb(image))
    inner = _InnerTimer(seg.predictor)
    ours, theirs = [], []
    for repeat in range(repeats):
        for kind, value in prompts:
            seg.reset_prompts()
            if kind == "point":
                calls = (
                    partial(seg.predict, [value]),
                    partial(
                        bare.predict,
                        point_coords=rc_to_xy([value]),
                        point_labels=np.array([1]),
                        multimask_output=True,
                    ),
                )
            else:
                calls = (
                    partial(seg.predict, box=value),
                    partial(bare.predict, box=box_to_xyxy(value), multimask_output=False),
                )
            order = (0, 1) if repeat % 2 == 0 else (1, 0)  # alternate who runs first
            times = {}
            for i in order:
                times[i] = _timed(calls[i])[1]
            ours.append(times[0])
            theirs.append(times[1])
    inner.remove()
    med_ours, med_bare = statistics.median(ours), statistics.median(theirs)
    own = [o - i for o, i in zip(ours, inner.seconds, strict=True)]
    return {
        "plugin_ms": 1e3 * med_ours,
        "bare_ms": 1e3 * med_bare,
        "overhead_pct": 100 * (med_ours / med_bare - 1),
        "median_paired_ratio": statistics.median(o / t for o, t in zip(ours, theirs, strict=True)),
        "plugin_own_ms": 1e3 * statistics.median(own),
        "plugin_own_pct": 100
        * statistics.median(o / i for o, i in zip(own, inner.seconds, strict=True)),
        "n": len(ours),
    }


class _InnerTimer:
    """Times the SamPredictor.predict calls made inside the plugin's predict."""

    def __init__(self, predictor):
        self.predictor, self.seconds = predictor, []
        original = predictor.predict

        def timed(*args, **kwargs):
            out, seconds = _timed(original, *args, **kwargs)
            self.seconds.append(seconds)
            return out

        predictor.predict = timed

    def remove(self):
        del self.predictor.predict


def embedding_times(checkpoint, image, cache_dir, tile_size=None):
    """Cold embedding, memory-cache hit and disk-cache hit (fresh segmenter) in seconds."""
    sam, model_id = load_sam(checkpoint)
    seg = PromptableSegmenter(sam, model_id, EmbeddingCache(cache_dir), tile_size=tile_size)
    embedding, cold = _timed(seg.set_image, image)
    _, memory = _timed(seg.set_image, image)
    fresh = PromptableSegmenter(sam, model_id, EmbeddingCache(cache_dir), tile_size=tile_size)
    _, disk = _timed(fresh.set_image, image)
    return seg, {
        "tiles": len(embedding.tiles),
        "cold_s": cold,
        "memory_hit_s": memory,
        "disk_hit_s": disk,
    }


def nms_time(n_boxes):
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 1000, (n_boxes, 2))
    boxes = torch.tensor(
        np.concatenate([xy, xy + rng.uniform(5, 100, (n_boxes, 2))], 1), dtype=torch.float32
    )
    _, seconds = _timed(batched_nms, boxes, torch.rand(n_boxes), torch.zeros(n_boxes), 0.7)
    return 1e3 * seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="passes over the prompts")
    parser.add_argument("--out", default=str(result_path("sam.json")))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_segment_anything()
    name = sorted((data_folder("dsb2018_stardist") / "images").glob("*.tif"))[0].name
    image = tifffile.imread(data_folder("dsb2018_stardist") / "images" / name)
    truth = tifffile.imread(data_folder("dsb2018_stardist") / "masks" / name)
    big = tifffile.imread(sorted((data_folder("coelho2009_u2os") / "images").glob("*.tif"))[0])
    ids, points = centres(truth)
    boxes = bounding_boxes(truth)
    prompts = [("point", tuple(p)) for p in points[:20]] + [
        ("box", boxes[int(i)]) for i in ids[:20]
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, config in (("tiny", TINY_CONFIG), ("vit_b-size", VIT_B)):
            ckpt = write_random_checkpoint(Path(tmp) / f"{label}.pth", config)
            # one tile = the whole image, so plugin and bare predictor do the same work
            seg, emb = embedding_times(ckpt, image, Path(tmp) / "emb", tile_size=max(image.shape))
            lat = prompt_latency(seg, image, prompts, args.repeats)
            rows.append({"model": label, "image": f"dsb2018 {image.shape}", **emb, **lat})
            for name_, data in (("dsb2018", image), ("u2os", big)):
                if label == "tiny" or name_ == "u2os":  # tiled at the model's own input size
                    _, tiled = embedding_times(ckpt, data, Path(tmp) / "emb")
                    rows.append({"model": label, "image": f"{name_} {data.shape}", **tiled})
    result = {
        "machine": f"{platform.processor() or platform.machine()}, torch threads {args.threads}",
        "torch": torch.__version__,
        "load_average_1min_at_end": os.getloadavg()[0],
        "torchvision_mode": compat_mode(),
        "rows": rows,
        "fallback_batched_nms_ms": {n: nms_time(n) for n in (100, 1000, 3000)},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print_table(result)
    return 0


def print_table(result):
    print(
        f"machine: {result['machine']}; torch {result['torch']}; torchvision: {result['torchvision_mode']}"
    )
    print(
        "| model | image | tiles | embed cold s | memory hit s | disk hit s | plugin ms | bare ms "
        "| overhead % (medians) | paired ratio | plugin's own ms (% of SAM call) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in result["rows"]:
        keys = ("plugin_ms", "bare_ms", "overhead_pct", "median_paired_ratio")
        lat = [f"{r[k]:.2f}" if k in r else "" for k in keys]
        lat.append(
            f"{r['plugin_own_ms']:.2f} ({r['plugin_own_pct']:.2f} %)"
            if "plugin_own_ms" in r
            else ""
        )
        print(
            f"| {r['model']} | {r['image']} | {r['tiles']} | {r['cold_s']:.2f} | {r['memory_hit_s']:.4f} "
            f"| {r['disk_hit_s']:.3f} | " + " | ".join(lat) + " |"
        )
    print(
        "fallback batched_nms ms:",
        {k: round(v, 1) for k, v in result["fallback_batched_nms_ms"].items()},
    )


if __name__ == "__main__":
    sys.exit(main())

"""Which annotated objects does a trained model miss on the held-out images, and do they touch
the image border? (The check behind ``border_mirror``.)

A ground-truth object is missed when no predicted object overlaps it with IoU >= 0.5. Prints one
line per missed object (area in pixels, touches the border or not, best IoU) and a summary; the
test split is ``bench_cellpose.py``'s (``bench_air.py`` uses the same Coelho test images)::

    python -m benchmarks.diagnostics.missed_objects --model cellpose --checkpoint CKPT --folders coelho2009_u2os
    python -m benchmarks.diagnostics.missed_objects --model air --checkpoint CKPT --folders coelho2009_u2os
    python -m benchmarks.diagnostics.missed_objects --model cellpose --checkpoint CKPT --border-mirror 0
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

import numpy as np
import torch
from skimage.measure import regionprops

from benchmarks.bench_cellpose import FOLDERS, load_split
from napari_cellist.metrics import best_iou_per_object
from napari_cellist.models import get_model_class


def missed(truth: np.ndarray, pred: np.ndarray) -> list[tuple[int, bool, float]]:
    """(area, touches the border, best IoU) of every object of ``truth`` matched below IoU 0.5."""
    out = []
    h, w = truth.shape
    best_of = dict(zip(*best_iou_per_object(truth, pred), strict=True))
    for obj in regionprops(truth):
        best = best_of[obj.label]
        if best < 0.5:
            r0, c0, r1, c1 = obj.bbox
            out.append((int(obj.area), r0 == 0 or c0 == 0 or r1 == h or c1 == w, float(best)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("cellpose", "air"), required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--folders", nargs="+", default=["coelho2009_u2os"], choices=FOLDERS)
    parser.add_argument(
        "--border-mirror", type=float, default=None, help="override the model's border_mirror"
    )
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = get_model_class(args.model).load(args.checkpoint)
    if args.border_mirror is not None:
        model.params = replace(model.params, border_mirror=args.border_mirror)
    _, test = load_split(tuple(args.folders))
    for group, samples in test.items():
        misses = []
        for s in samples:
            found = missed(s.labels, model.predict(s.image).labels)
            for area, border, best in found:
                print(
                    f"{group} {s.name}: missed object of {area} px, border {border}, best IoU {best:.2f}"
                )
            misses += found
        on_border = sum(b for _, b, _ in misses)
        n_true = sum(len(np.unique(s.labels)) - 1 for s in samples)
        print(
            f"{group}: {len(misses)} of {n_true} objects missed, {on_border} of them touch the border"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

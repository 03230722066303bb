"""Effect of mirroring the image border (``border_mirror``) on one trained model's test scores.

The same trained network predicts the held-out images of ``bench_cellpose.py``'s split twice:
with the border mirrored by half an object diameter (the default) and without (0 = plain
Cellpose / AIR). Nothing is retrained, so the difference is the border handling alone::

    python -m benchmarks.bench_border_mirror --model cellpose --checkpoint CKPT \
        --folders coelho2009_u2os coelho2009_nih3t3 --out benchmarks/results/border_mirror_cellpose.json
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks._data import result_path
from benchmarks.bench_cellpose import FOLDERS, load_split
from napari_cellist.metrics import score_images
from napari_cellist.models import get_model_class

KEYS = ("ap50", "mean_ap", "precision", "recall", "count_error", "n_true", "n_pred")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("cellpose", "air"), default="cellpose")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--folders", nargs="+", default=list(FOLDERS), choices=FOLDERS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(result_path("border_mirror.json")))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = get_model_class(args.model).load(args.checkpoint)
    if args.model == "cellpose":
        model.params = replace(model.params, resample=False)
    _, test = load_split(tuple(args.folders))
    result: dict = {"model": args.model, "checkpoint": args.checkpoint, "scores": {}}
    print("| test group | border_mirror | AP50 | mean AP | precision | recall | count error |")
    print("|---|---|---|---|---|---|---|")
    for group, samples in test.items():
        for mirror in (0.0, 0.5):
            params = replace(model.params, border_mirror=mirror)
            preds = [model.predict(s.image, params).labels for s in samples]
            scores = score_images(
                [s.labels for s in samples], preds, border_margin=20 if group == "hela" else 0
            ).as_dict()
            result["scores"].setdefault(group, {})[str(mirror)] = {k: scores[k] for k in KEYS}
            print(
                f"| {group} | {mirror} | {scores['ap50']:.3f} | {scores['mean_ap']:.3f} | "
                f"{scores['precision']:.2f} | {scores['recall']:.2f} | {scores['count_error']:.3f} |"
            )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

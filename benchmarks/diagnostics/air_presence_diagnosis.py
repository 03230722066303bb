"""Why unsupervised AIR over-counts: is it what the ELBO prefers, or how it is optimised?

On one training image of ``bench_air.py``'s split (with its annotation, used only to tell which
grid cells touch a nucleus), a trained checkpoint is asked:

1. how many cells it marks present, and how many touch a nucleus;
2. the image log-likelihood with every present cell drawn, and with the cells away from nuclei
   switched off (same boxes and appearance);
3. the presence KL those background cells pay (Monte Carlo, relaxed Bernoulli at the final
   temperature and prior);
4. the gradient of the training loss (negative ELBO, nats) with respect to the presence logit of
   background cells and of nucleus cells, averaged over ``--samples`` draws per cell, then
   summarised over the cells (mean, median, fraction positive). Positive = training pushes
   presence down.

    python -m benchmarks.diagnostics.air_presence_diagnosis --checkpoint CKPT --data dsb2018_stardist
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pyro
import torch
import torch.nn.functional as F
from torch.distributions.relaxed_bernoulli import LogitRelaxedBernoulli

from benchmarks.bench_air import split
from napari_cellist.models.air import AirModel
from napari_cellist.models.air.generative import Anneal, Batch
from napari_cellist.models.air.supervision import labels_to_working, to_working


def _nucleus_cells(labels: np.ndarray, cell: int) -> torch.Tensor:
    """``(Hc*Wc,)`` bool: the grid cell holds at least one annotated pixel."""
    fg = torch.from_numpy(labels > 0).float()[None, None]
    return F.max_pool2d(fg, cell)[0, 0].flatten().bool()


def diagnose(model: AirModel, image: np.ndarray, labels: np.ndarray, samples: int = 20) -> dict:
    """The numbers listed in the module docstring, for one image."""
    net = model.net
    work = to_working(image, model.object_diameter(image), net.geom)
    nucleus = _nucleus_cells(labels_to_working(labels, work), net.geom.cell)
    batch = Batch(
        torch.from_numpy(work.image)[None, None], torch.from_numpy(work.background)[None, None]
    )
    anneal = Anneal(temperature=0.3, prior_prob=0.05)
    with torch.no_grad():
        codes = net.encode(batch.image, batch.background)
        n = nucleus.numel()
        z_where = codes.where_loc.reshape(1, n, -1)
        z_what, _ = net.what_params(batch.image, codes.where_loc, codes.features)
        logits = codes.pres_logit.reshape(1, n)
        present = torch.sigmoid(logits) > model.params.min_score

        def loglik(presence: torch.Tensor) -> float:
            recon, _ = net.render(presence, z_where, z_what, batch.background)
            return float(
                torch.distributions.Normal(recon, net.obs_sigma).log_prob(batch.image).sum()
            )

        q = LogitRelaxedBernoulli(torch.tensor(anneal.temperature), logits=logits)
        prior = LogitRelaxedBernoulli(
            torch.tensor(anneal.temperature), logits=torch.logit(torch.tensor(anneal.prior_prob))
        )
        y = q.rsample((200,))
        kl = (q.log_prob(y) - prior.log_prob(y)).mean(0)[0]
        result = {
            "cells": n,
            "present_cells": int(present.sum()),
            "nucleus_cells": int(nucleus.sum()),
            "loglik_all_present": loglik(present.float()),
            "loglik_background_off": loglik((present[0] & nucleus)[None].float()),
            "kl_background_cells": float(kl[~nucleus & present[0]].sum()),
        }
    grads = []
    encode = net.encode

    def keep_grad(image: torch.Tensor, background: torch.Tensor):
        out = encode(image, background)
        out.pres_logit.retain_grad()
        grads.append(out)
        return out

    net.encode = keep_grad
    try:
        total = torch.zeros(n)
        for _ in range(samples):
            net.zero_grad()
            pyro.infer.Trace_ELBO().differentiable_loss(
                net.model, net.guide, batch, anneal
            ).backward()
            total += grads[-1].pres_logit.grad.flatten()
    finally:
        net.encode = encode
    mean = total / samples
    for name, cells in (("background", ~nucleus), ("nucleus", nucleus)):
        result[f"grad_logit_{name}_mean"] = float(mean[cells].mean())
        result[f"grad_logit_{name}_median"] = float(mean[cells].median())
        result[f"grad_logit_{name}_fraction_positive"] = float((mean[cells] > 0).float().mean())
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", default="dsb2018_stardist")
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--out", default=None, help="JSON file for the numbers")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = AirModel.load(args.checkpoint)
    sample = split(args.data)[0][0]
    result = diagnose(model, np.asarray(sample.image, np.float32), sample.labels, args.samples)
    result.update(data=args.data, image=sample.name)
    for key, value in result.items():
        print(f"{key}: {value:.1f}" if isinstance(value, float) else f"{key}: {value}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

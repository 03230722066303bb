"""The AIR generative model and its amortised guide, as Pyro programs over a grid of cells.

For every image ``b`` and every slot ``n`` of the grid (``n`` runs over cells x slots)::

    z_pres[b, n]  ~ LogitRelaxedBernoulli(temperature, logit(prior_prob))   # presence, logit space
    z_where[b, n] ~ Normal(0, I_5)        # offset in the cell, scale, aspect, angle (where_to_box)
    z_what[b, n]  ~ Normal(0, I_D)        # appearance code
    glimpse       = Decoder(z_what)       # appearance + alpha
    x_hat         = background + coverage(sigmoid(z_pres) * SpatialTransformer(glimpse, z_where))
    x[b]          ~ Normal(x_hat, obs_sigma)

Presence is the Concrete relaxation of a Bernoulli sampled in logit space (Maddison et al. 2017),
so its density and the KL to the prior stay finite in float32; the temperature and the prior
presence probability are annealed by the training loop. Annotations are extra observations of
the latents (``ann_pres``, ``ann_where``, ``ann_mask``), so corrections make the model
semi-supervised without a separate loss. As in Pyro's semi-supervised VAE (Kingma et al. 2014),
annotated presence is *observed* (it replaces the latent in the model and is not sampled from
the guide), and presence and position annotations also observe the *encoder's* outputs (an auxiliary classifier /
regressor term, weighted up), and masks observe the alpha rendered from the sampled latents.
The model never calls ``pyro.param``/``pyro.module``:
all weights live in this ``nn.Module`` and are optimised with ``Trace_ELBO.differentiable_loss``,
so two AIR models never share parameters through Pyro's global parameter store.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions.torch_distribution import TorchDistributionMixin
from torch import nn
from torch.distributions.relaxed_bernoulli import (
    LogitRelaxedBernoulli as _TorchLogitRelaxedBernoulli,
)

from .modules import (
    WHERE_DIM,
    Decoder,
    Encoder,
    Geometry,
    GlimpseEncoder,
    bounded_scale,
    composite,
    extract_glimpses,
    place_glimpses,
    where_to_box,
)

WHERE_OBS_SIGMA = 0.1  # how exactly annotated boxes pin z_where (in tanh units)
# An annotated presence speaks for a whole cell, a mask pixel for one pixel: without this extra
# weight the image likelihood (one term per pixel) drowns the presence labels.
PRES_WEIGHT = 100.0


class LogitRelaxedBernoulli(_TorchLogitRelaxedBernoulli, TorchDistributionMixin):
    """Concrete / relaxed Bernoulli whose samples are logits (numerically stable log density).

    torch's class implements ``rsample`` but leaves ``has_rsample`` False, so Pyro would sample it
    without a gradient path and fall back to score-function gradients with no baseline (the whole
    image's cost for every cell). Declaring it reparameterisable gives the pathwise (Concrete)
    gradient the relaxation is for.
    """

    has_rsample = True


@dataclass(frozen=True)
class Batch:
    """Tensors of one training (or prediction) batch at the working scale.

    ``image``/``background`` are ``(B, 1, H, W)`` with ``H, W`` multiples of the cell size. The
    supervision tensors (None when unannotated) index slots ``N = Hc*Wc*S`` in (row, col, slot)
    order: ``pres_*`` ``(B, N)``, ``where_*`` ``(B, N, 5)`` (tanh units), ``mask_*``
    ``(B, N, Wn, Wn)`` / ``(B, N)``; ``weight`` ``(B,)`` scales each image's annotations.
    """

    image: torch.Tensor
    background: torch.Tensor
    pres_target: torch.Tensor | None = None
    pres_known: torch.Tensor | None = None
    where_target: torch.Tensor | None = None
    where_known: torch.Tensor | None = None
    mask_target: torch.Tensor | None = None
    mask_known: torch.Tensor | None = None
    weight: torch.Tensor | None = None


@dataclass(frozen=True)
class Anneal:
    """Annealed quantities of the current step."""

    temperature: float = 0.5
    prior_prob: float = 0.05
    annotation_scale: float = 20.0  # annotations count this many times (p(a | z) ** scale)


@dataclass(frozen=True)
class CellCodes:
    """Deterministic encoder outputs per slot (``(B, Hc, Wc, S, ...)``)."""

    pres_logit: torch.Tensor
    where_loc: torch.Tensor
    where_scale: torch.Tensor
    features: torch.Tensor


@dataclass
class EncoderPass:
    """The guide's encoder outputs for one ELBO evaluation, handed on to the model.

    Pyro runs the guide before the model with the same arguments; the guide fills ``codes``
    and the model's annotation terms observe them, so the encoder runs once per step.
    """

    codes: CellCodes | None = None


class AirNet(nn.Module):
    """Encoder, glimpse encoder and decoder, with the Pyro ``model`` and ``guide`` built on them."""

    def __init__(
        self,
        geom: Geometry,
        z_what: int = 8,
        width: int = 32,
        features: int = 32,
        obs_sigma: float = 0.1,
        min_contrast: float = 0.1,
    ) -> None:
        super().__init__()
        self.geom, self.z_what_dim, self.obs_sigma = geom, z_what, obs_sigma
        self.encoder = Encoder(geom.slots, width, features)
        self.glimpse_encoder = GlimpseEncoder(geom.glimpse, features, z_what)
        self.decoder = Decoder(z_what, geom.glimpse, min_contrast=min_contrast)

    # -- deterministic pieces ---------------------------------------------------------------
    def grid_shape(self, image: torch.Tensor) -> tuple[int, int]:
        """Cells ``(Hc, Wc)`` of a ``(B, 1, H, W)`` image."""
        return image.shape[-2] // self.geom.cell, image.shape[-1] // self.geom.cell

    def encode(self, image: torch.Tensor, background: torch.Tensor) -> CellCodes:
        """One forward pass of the convolutional encoder."""
        out = self.encoder(torch.cat([image, background], dim=1))
        return CellCodes(
            pres_logit=8.0 * torch.tanh(out[..., 0] / 8.0),  # |logit| <= 8: p in [3e-4, 1-3e-4]
            where_loc=out[..., 1 : 1 + WHERE_DIM],
            where_scale=bounded_scale(out[..., 1 + WHERE_DIM : 1 + 2 * WHERE_DIM]),
            features=out[..., 1 + 2 * WHERE_DIM :],
        )

    def what_params(
        self, image: torch.Tensor, z_where: torch.Tensor, features: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``z_what`` location and scale ``(B, N, D)`` from glimpses inside the ``z_where`` boxes."""
        boxes = where_to_box(z_where, self.geom)
        glimpses = extract_glimpses(image, boxes, self.geom)
        b, n = glimpses.shape[:2]
        out = self.glimpse_encoder(glimpses, features.reshape(b, n, -1))
        return out[..., : self.z_what_dim], bounded_scale(out[..., self.z_what_dim :])

    def render(
        self,
        presence: torch.Tensor,
        z_where: torch.Tensor,
        z_what: torch.Tensor,
        background: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction ``(B, 1, H, W)`` and placed alpha windows ``(B, N, Wn, Wn)``.

        ``presence`` ``(B, N)`` in [0, 1], ``z_where`` ``(B, N, 5)``, ``z_what`` ``(B, N, D)``.
        """
        b, n = presence.shape
        boxes = where_to_box(z_where, self.geom).reshape(b * n, WHERE_DIM)
        appearance, alpha_logit = self.decoder(z_what.reshape(b * n, -1))
        glimpse = torch.stack([appearance, torch.sigmoid(alpha_logit)], dim=1)
        placed = place_glimpses(glimpse, boxes, self.geom)
        wn = self.geom.window
        app_w = placed[:, 0].view(b, n, wn, wn)
        alpha_w = placed[:, 1].view(b, n, wn, wn)
        grid = self.grid_shape(background)
        return composite(presence, alpha_w, app_w, background, grid, self.geom), alpha_w

    # -- Pyro programs ----------------------------------------------------------------------
    def _codes_for(self, batch: Batch, encoded: EncoderPass | None) -> CellCodes:
        """Encoder outputs for ``batch``: those the guide handed on in ``encoded``, else a
        fresh pass."""
        if encoded is not None and encoded.codes is not None:
            return encoded.codes
        return self.encode(batch.image, batch.background)

    def _plates(self, batch: Batch) -> tuple[pyro.plate, pyro.plate, int, int]:
        hc, wc = self.grid_shape(batch.image)
        b, n = batch.image.shape[0], hc * wc * self.geom.slots
        device = batch.image.device  # plate indices where the batch is (CPU / GPU)
        return (
            pyro.plate("images", b, dim=-2, device=device),
            pyro.plate("cells", n, dim=-1, device=device),
            b,
            n,
        )

    def model(
        self, batch: Batch, anneal: Anneal, encoded: EncoderPass | None = None
    ) -> torch.Tensor:
        """Generative model p(z) p(x | z) p(annotations | z); returns the reconstruction.

        ``encoded`` holds the guide's encoder outputs of this ELBO evaluation (observed by the
        annotation terms); without it the encoder runs again.
        """
        images, cells, b, n = self._plates(batch)
        on_device = batch.image.new_tensor  # the priors live where the batch does (CPU / GPU)
        prior_logit = torch.logit(on_device(anneal.prior_prob))
        zero, one = on_device(0.0), on_device(1.0)
        unknown = None if batch.pres_known is None else ~batch.pres_known
        with images, cells:
            z_pres = pyro.sample(
                "z_pres",
                LogitRelaxedBernoulli(on_device(anneal.temperature), logits=prior_logit)
                .expand([b, n])
                .mask(True if unknown is None else unknown),
            )
            z_where = pyro.sample(
                "z_where", dist.Normal(zero, one).expand([b, n, WHERE_DIM]).to_event(1)
            )
            z_what = pyro.sample(
                "z_what", dist.Normal(zero, one).expand([b, n, self.z_what_dim]).to_event(1)
            )
        presence = torch.sigmoid(z_pres)
        if unknown is not None:  # annotated presence is observed: it replaces the latent
            presence = torch.where(unknown, presence, batch.pres_target)
        recon, alpha_w = self.render(presence, z_where, z_what, batch.background)
        with images:
            pyro.sample(
                "x",
                dist.Normal(recon.unsqueeze(1), self.obs_sigma).to_event(3),
                obs=batch.image.unsqueeze(1),
            )
        if batch.pres_target is not None:
            codes = self._codes_for(batch, encoded)
            self._observe_annotations(batch, (images, cells), codes, alpha_w, anneal)
        return recon

    def _observe_annotations(
        self,
        batch: Batch,
        plates: tuple[pyro.plate, pyro.plate],
        codes: CellCodes,
        alpha_w: torch.Tensor,
        anneal: Anneal,
    ) -> None:
        images, cells = plates
        b, n = alpha_w.shape[:2]
        weight = batch.weight[:, None]
        # images without annotations (weight 0) are masked out; Pyro's scale must stay positive
        scale = anneal.annotation_scale * weight.clamp_min(1e-6)
        with images, cells, pyro.poutine.scale(scale=scale), pyro.poutine.mask(mask=weight > 0):
            with pyro.poutine.scale(scale=PRES_WEIGHT):
                pyro.sample(
                    "ann_pres",
                    dist.Bernoulli(logits=codes.pres_logit.reshape(b, n)).mask(batch.pres_known),
                    obs=batch.pres_target,
                )
            pyro.sample(
                "ann_where",
                dist.Normal(torch.tanh(codes.where_loc.reshape(b, n, WHERE_DIM)), WHERE_OBS_SIGMA)
                .mask(batch.where_known)
                .to_event(1),
                obs=batch.where_target,
            )
            probs = alpha_w.clamp(1e-4, 1.0 - 1e-4)
            pyro.sample(
                "ann_mask",
                dist.Bernoulli(probs=probs).to_event(2).mask(batch.mask_known),
                obs=batch.mask_target,
            )

    def guide(self, batch: Batch, anneal: Anneal, encoded: EncoderPass | None = None) -> CellCodes:
        """Amortised posterior q(z | x): one encoder pass, then glimpses for ``z_what``.

        The encoder outputs are also put in ``encoded`` (if given) for the model.
        """
        images, cells, b, n = self._plates(batch)
        codes = self.encode(batch.image, batch.background)
        if encoded is not None:
            encoded.codes = codes
        unknown = None if batch.pres_known is None else ~batch.pres_known
        with images, cells:
            pyro.sample(
                "z_pres",
                LogitRelaxedBernoulli(
                    codes.pres_logit.new_tensor(anneal.temperature),
                    logits=codes.pres_logit.reshape(b, n),
                ).mask(True if unknown is None else unknown),
            )
            z_where = pyro.sample(
                "z_where",
                dist.Normal(
                    codes.where_loc.reshape(b, n, WHERE_DIM),
                    codes.where_scale.reshape(b, n, WHERE_DIM),
                ).to_event(1),
            )
        shape = codes.where_loc.shape
        loc, scale = self.what_params(batch.image, z_where.reshape(shape), codes.features)
        with images, cells:
            pyro.sample("z_what", dist.Normal(loc, scale).to_event(1))
        return codes

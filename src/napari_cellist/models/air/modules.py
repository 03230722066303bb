"""Neural parts of AIR: the convolutional encoder, the glimpse encoder, the glimpse decoder and the
differentiable spatial transformer that places glimpses on the image.

Geometry (all at the *working scale*, where a typical object is ``Geometry.diameter`` pixels wide)
--------------------------------------------------------------------------------------------------
The image is covered by a grid of square cells of ``cell`` pixels (the encoder's stride). Each
cell has ``slots`` object slots. A slot's ``z_where`` (5 unbounded reals) is mapped to a box by
:func:`where_to_box` through ``tanh``, so every box is bounded whatever the encoder outputs:

* centre = cell centre + ``OFFSET_RANGE * cell * tanh(z[0:2])`` (``(y, x)``, pixels), in its cell;
* side = ``BOX_MARGIN * diameter * exp(SIZE_RANGE * tanh(z[2]))``;
* aspect = ``exp(aspect_range * tanh(z[3]))``, height = side * sqrt(aspect), width = side / sqrt(aspect);
* angle = ``angle_range * tanh(z[4])`` radians (``angle_range`` 0 = boxes never turn): the box
  turns by it, its height axis pointing along ``(y, x) = (cos a, -sin a)`` and its width axis
  along ``(sin a, cos a)``. With the aspect (taller
  or wider) +-45 degrees reaches every orientation, so a tilted elongated nucleus is one object.

A slot draws into a square *window* of ``Geometry.window`` pixels centred on its cell; windows are
summed into the image with :func:`torch.nn.functional.fold`, so rendering costs
O(cells x window) instead of O(cells x image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

OFFSET_RANGE = 0.5  # box centre inside its cell
SIZE_RANGE = math.log(2.0)  # box side within [1/2, 2] x the reference side
BOX_MARGIN = 1.25  # box side / object diameter: the glimpse holds the object and some background
EPS = 1e-6
# "linear": percentile-normalised intensities as they are; "sqrt": compressed by an offset square
# root (see supervision.compress_intensity), so dim objects next to bright ones keep contrast.
INTENSITY_SCALES = ("linear", "sqrt")
MAX_CONTRAST = 1.5  # brightest object above its background, working intensity units
WHERE_DIM = 5  # z_where: offset y, offset x, size, aspect, angle


@dataclass(frozen=True)
class Geometry:
    """Grid geometry at the working scale (pixels)."""

    diameter: float = 12.0  # typical object diameter at the working scale
    cell: int = 8  # cell side = encoder stride
    slots: int = 1  # object slots per cell
    glimpse: int = 16  # decoded glimpse side (pixels of the glimpse)
    window: int = 24  # side of the square each slot renders into, centred on its cell
    aspect_range: float = 1.2  # log of the largest height / width ratio of a box (3.3)
    angle_range: float = math.pi / 4  # largest box rotation either way, radians (0 = upright)
    intensity: str = "linear"  # how normalised intensities are compressed, see INTENSITY_SCALES
    sqrt_offset: float = 0.1  # offset of the "sqrt" intensity scale (normalised units)

    def __post_init__(self) -> None:
        if self.intensity not in INTENSITY_SCALES:
            raise ValueError(
                f"Unknown intensity scale {self.intensity!r}; use one of {INTENSITY_SCALES}."
            )
        if self.intensity == "sqrt" and not self.sqrt_offset > 0:
            raise ValueError(f"sqrt_offset must be > 0, got {self.sqrt_offset}.")
        if (self.window - self.cell) % 2 or self.window < self.cell:
            raise ValueError(
                f"The render window ({self.window} px) must exceed the cell ({self.cell} px) by "
                "an even number of pixels."
            )


def bounded_scale(raw: torch.Tensor, low: float = 0.02, high: float = 1.0) -> torch.Tensor:
    """Map an unbounded tensor to a scale in ``[low, high]`` (sigmoid-bounded, never 0 or inf)."""
    return low + (high - low) * torch.sigmoid(raw)


def where_to_box(z_where: torch.Tensor, geom: Geometry) -> torch.Tensor:
    """Boxes ``(..., 5)`` = (dy, dx, height, width, angle) from ``z_where`` ``(..., 5)``.

    ``dy, dx`` are the box centre relative to its cell centre, in pixels; angle in radians.
    """
    t = torch.tanh(z_where)
    offset = OFFSET_RANGE * geom.cell * t[..., 0:2]
    side = BOX_MARGIN * geom.diameter * torch.exp(SIZE_RANGE * t[..., 2])
    half_log_aspect = 0.5 * geom.aspect_range * t[..., 3]
    height = side * torch.exp(half_log_aspect)
    width = side * torch.exp(-half_log_aspect)
    angle = geom.angle_range * t[..., 4]
    return torch.cat([offset, height[..., None], width[..., None], angle[..., None]], dim=-1)


def box_to_image_affine(
    centre: torch.Tensor, boxes: torch.Tensor, image_shape: tuple[int, int]
) -> torch.Tensor:
    """Affine maps ``(..., 2, 3)`` for :func:`torch.nn.functional.affine_grid`: glimpse coordinates
    (``[-1, 1]`` across the box) to normalised image coordinates.

    ``centre`` ``(..., 2)`` is the box centre (y, x) in image pixels, ``boxes`` ``(..., 5)`` as
    from :func:`where_to_box` (only height, width and angle are used).
    """
    h, w = image_shape
    cos, sin = torch.cos(boxes[..., 4]), torch.sin(boxes[..., 4])
    bh, bw = boxes[..., 2], boxes[..., 3]
    row_x = torch.stack([bw * cos / w, -bh * sin / w, 2.0 * centre[..., 1] / w - 1.0], dim=-1)
    row_y = torch.stack([bw * sin / h, bh * cos / h, 2.0 * centre[..., 0] / h - 1.0], dim=-1)
    return torch.stack([row_x, row_y], dim=-2)


def image_to_box_affine(boxes: torch.Tensor, window: float) -> torch.Tensor:
    """The inverse of :func:`box_to_image_affine` for a square window of ``window`` pixels
    centred on the box's cell: normalised window coordinates to glimpse coordinates, ``(N, 2, 3)``.
    """
    dy, dx, bh, bw = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    cos, sin = torch.cos(boxes[:, 4]), torch.sin(boxes[:, 4])
    row_u = torch.stack(
        [window * cos / bw, window * sin / bw, -2.0 * (cos * dx + sin * dy) / bw], dim=-1
    )
    row_v = torch.stack(
        [-window * sin / bh, window * cos / bh, -2.0 * (cos * dy - sin * dx) / bh], dim=-1
    )
    return torch.stack([row_u, row_v], dim=-2)


def _conv(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=dilation, dilation=dilation),
        nn.GroupNorm(4, c_out),
        nn.ReLU(),
    ]


class Encoder(nn.Module):
    """Fully convolutional encoder: image ``(B, 2, H, W)`` (image, background) -> per-cell outputs.

    Returns ``(B, Hc, Wc, slots, 1 + 2 * WHERE_DIM + features)``: the presence logit, ``z_where``
    location and raw scale, and a feature vector for the glimpse encoder. Stride 8, receptive field ~70 px.
    """

    def __init__(self, slots: int = 1, width: int = 32, features: int = 32) -> None:
        super().__init__()
        self.slots, self.features = slots, features
        # GroupNorm: dim normalised images otherwise stall the first ~100 steps.
        self.body = nn.Sequential(
            *_conv(2, width // 2, stride=2),
            *_conv(width // 2, width, stride=2),
            *_conv(width, width, stride=2),
            *_conv(width, 2 * width),
            *_conv(2 * width, 2 * width, dilation=2),
        )
        self.head = nn.Conv2d(2 * width, slots * (1 + 2 * WHERE_DIM + features), 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = self.head(self.body(image))  # (B, slots * C, Hc, Wc)
        b, _, hc, wc = out.shape
        return out.view(b, self.slots, -1, hc, wc).permute(0, 3, 4, 1, 2)


class GlimpseEncoder(nn.Module):
    """Glimpse ``(N, G*G)`` and cell features ``(N, F)`` -> ``z_what`` location and raw scale."""

    def __init__(self, glimpse: int, features: int, z_what: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(glimpse * glimpse + features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 2 * z_what),
        )

    def forward(self, glimpses: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([glimpses, features], dim=-1))


class Decoder(nn.Module):
    """``z_what`` ``(N, D)`` -> glimpse contrast and alpha, each ``(N, G, G)``.

    The contrast (intensity above the background, normalised units) lies in
    ``[min_contrast, MAX_CONTRAST]``: an object is at least that much brighter than what is
    behind it, so faint background texture cannot be "explained" by objects. The alpha logit is
    returned (alpha = sigmoid), for log-space mask likelihoods.
    """

    def __init__(
        self, z_what: int, glimpse: int, hidden: int = 128, min_contrast: float = 0.1
    ) -> None:
        super().__init__()
        if not 0.0 <= min_contrast < MAX_CONTRAST:
            raise ValueError(f"min_contrast must be in [0, {MAX_CONTRAST}), got {min_contrast}.")
        self.glimpse, self.min_contrast = glimpse, min_contrast
        self.net = nn.Sequential(
            nn.Linear(z_what, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 2 * glimpse * glimpse),
        )
        self._init_blob()

    @torch.no_grad()
    def _init_blob(self) -> None:
        """Start from a bright round object filling the box (less its margin), so that present
        objects explain nuclei from the first steps and presence is not learned away."""
        last = self.net[-1]
        last.weight.mul_(0.1)
        g = self.glimpse
        coords = (torch.arange(g, dtype=torch.float32) + 0.5) / g * 2.0 - 1.0
        radius = torch.sqrt(coords[:, None] ** 2 + coords[None, :] ** 2)
        alpha_logit = 8.0 * (1.0 / BOX_MARGIN - radius)
        start = (0.5 - self.min_contrast) / (MAX_CONTRAST - self.min_contrast)  # contrast 0.5
        appearance_logit = torch.full((g, g), math.log(start / (1.0 - start)))
        last.bias.copy_(torch.cat([appearance_logit.reshape(-1), alpha_logit.reshape(-1)]))

    def forward(self, z_what: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(z_what).view(-1, 2, self.glimpse, self.glimpse)
        span = MAX_CONTRAST - self.min_contrast
        appearance = self.min_contrast + span * torch.sigmoid(out[:, 0])
        alpha_logit = out[:, 1].clamp(-12.0, 12.0)
        return appearance, alpha_logit


def cell_centres(hc: int, wc: int, cell: int, device=None) -> torch.Tensor:
    """Centres ``(hc, wc, 2)`` of the grid cells, (y, x) in pixels."""
    ys = (torch.arange(hc, device=device, dtype=torch.float32) + 0.5) * cell
    xs = (torch.arange(wc, device=device, dtype=torch.float32) + 0.5) * cell
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1)


def extract_glimpses(image: torch.Tensor, boxes: torch.Tensor, geom: Geometry) -> torch.Tensor:
    """Sample a ``G x G`` glimpse of ``image`` ``(B, 1, H, W)`` inside every box.

    ``boxes`` is ``(B, Hc, Wc, S, 5)`` from :func:`where_to_box`; returns ``(B, Hc*Wc*S, G*G)``.
    """
    b, hc, wc, s, _ = boxes.shape
    centre = cell_centres(hc, wc, geom.cell, boxes.device)[None, :, :, None] + boxes[..., :2]
    n = hc * wc * s
    return glimpses_in_boxes(image, centre.reshape(b, n, 2), boxes.reshape(b, n, -1), geom.glimpse)


def glimpses_in_boxes(
    image: torch.Tensor, centre: torch.Tensor, boxes: torch.Tensor, glimpse: int
) -> torch.Tensor:
    """``(B, N, G*G)`` glimpses of ``image`` ``(B, 1, H, W)`` with ``G = glimpse``.

    ``centre`` ``(B, N, 2)`` are box centres (y, x) in image pixels and ``boxes`` ``(B, N, 5)`` as
    from :func:`where_to_box`; outside the image the border pixels are repeated.
    """
    b, n = centre.shape[:2]
    g = glimpse
    theta = box_to_image_affine(centre, boxes, image.shape[-2:])
    grid = F.affine_grid(theta.reshape(b * n, 2, 3), [b * n, 1, g, g], align_corners=False)
    grid = grid.view(b, n * g, g, 2)
    out = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.view(b, n, g * g)


def place_glimpses(glimpses: torch.Tensor, boxes: torch.Tensor, geom: Geometry) -> torch.Tensor:
    """Spatial transformer: draw glimpses ``(N, C, G, G)`` into their windows ``(N, C, Wn, Wn)``.

    ``boxes`` is ``(N, 5)`` (dy, dx, height, width, angle) relative to the window centre; outside
    its box a glimpse is 0.
    """
    theta = image_to_box_affine(boxes, float(geom.window))
    size = [boxes.shape[0], glimpses.shape[1], geom.window, geom.window]
    grid = F.affine_grid(theta, size, align_corners=False)
    return F.grid_sample(glimpses, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def fold_windows(
    windows: torch.Tensor, grid_shape: tuple[int, int], geom: Geometry
) -> torch.Tensor:
    """Sum windows ``(B, Hc*Wc, C, Wn, Wn)`` (slots already summed) into images ``(B, C, H, W)``."""
    b, n, c, wn, _ = windows.shape
    hc, wc = grid_shape
    cols = windows.reshape(b, n, c * wn * wn).transpose(1, 2)
    return F.fold(
        cols,
        (hc * geom.cell, wc * geom.cell),
        kernel_size=wn,
        stride=geom.cell,
        padding=(geom.window - geom.cell) // 2,
    )


def composite(
    presence: torch.Tensor,
    alpha: torch.Tensor,
    appearance: torch.Tensor,
    background: torch.Tensor,
    grid_shape: tuple[int, int],
    geom: Geometry,
) -> torch.Tensor:
    """Add the placed objects' contrast onto the background (fluorescence adds up).

    ``presence`` ``(B, N)``; ``alpha``/``appearance`` (contrast) ``(B, N, Wn, Wn)`` placed
    windows with ``N = Hc*Wc*S``; ``background`` ``(B, 1, H, W)``. Coverage is
    ``1 - prod(1 - z*alpha)`` (summed in log space); where objects overlap their contrast is the
    coverage-weighted mean, so the image is ``background + coverage * contrast``.
    """
    b, n, wn, _ = alpha.shape
    s = geom.slots
    weight = presence[..., None, None] * alpha
    log_clear = torch.log1p(-weight.clamp(max=1.0 - 1e-4))
    stacked = torch.stack([weight * appearance, weight, log_clear], dim=2)  # (B, N, 3, Wn, Wn)
    stacked = stacked.view(b, n // s, s, 3, wn, wn).sum(dim=2)
    summed = fold_windows(stacked, grid_shape, geom)
    coverage = 1.0 - torch.exp(summed[:, 2:3])
    foreground = summed[:, 0:1] / (summed[:, 1:2] + EPS)
    return background + coverage * foreground

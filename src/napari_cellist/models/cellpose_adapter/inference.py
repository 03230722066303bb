"""One Cellpose prediction: image -> Cellpose input, parameters -> ``eval`` keywords, masks -> Prediction."""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from skimage.transform import resize

from ...diameters import diameter_from_image
from ...geometry import bounding_boxes
from ...types import ObjectMeta, Prediction
from .params import CellposeParams
from .weights import ResolvedWeights

logger = logging.getLogger(__name__)

NAME = "cellpose"


def cellpose_input(image: np.ndarray, params: CellposeParams) -> np.ndarray:
    """Stack the cell and nucleus channels last, as Cellpose's 2-channel networks take them.

    Parameters
    ----------
    image : np.ndarray
        Grey ``(Y, X)`` / ``(Z, Y, X)``, or with a channel axis at ``params.channel_axis``.

    Returns
    -------
    np.ndarray
        float32 ``(Y, X, 2)`` or ``(Z, Y, X, 2)``: cells, nucleus (zeros when there is none).
    """
    array = np.asarray(image, np.float32)
    if params.channel_axis is None:
        cells, nucleus = array, np.zeros_like(array)
    else:
        array = np.moveaxis(array, params.channel_axis, -1)
        cells = _channel(array, params.channels[0], average=True)
        nucleus = _channel(array, params.channels[1], average=False)
    if cells.ndim not in (2, 3):
        raise ValueError(
            f"Cellpose takes (Y, X) or (Z, Y, X) images, got spatial shape {cells.shape}; "
            "set 'channel_axis' for multi-channel images."
        )
    return np.stack([cells, nucleus], axis=-1)


def _channel(array: np.ndarray, index: int, *, average: bool) -> np.ndarray:
    n_channels = array.shape[-1]
    if index == 0:
        return array.mean(axis=-1) if average else np.zeros(array.shape[:-1], np.float32)
    if not 1 <= index <= n_channels:
        raise ValueError(
            f"Channel {index} does not exist: the image has channels 1..{n_channels} (0 = none)."
        )
    return array[..., index - 1]


def resolve_diameter(
    image: np.ndarray, params: CellposeParams, network: Any, weights: ResolvedWeights | None
) -> float:
    """Object diameter in pixels: the given one, Cellpose's size model, or an image estimate.

    ``image`` is the output of :func:`cellpose_input`; Cellpose's size model (2D only) is used
    when its file was found next to pretrained weights.
    """
    if params.diameter:
        return float(params.diameter)
    if weights is not None and weights.size_path is not None and image.ndim == 3:  # 2D only
        from ._backend import cellpose_modules

        size_model = cellpose_modules()[0].SizeModel(
            network, pretrained_size=str(weights.size_path)
        )
        diameter = float(
            np.atleast_1d(
                size_model.eval(image, channels=None, channel_axis=2, invert=params.invert)[0]
            )[0]
        )
        logger.info("Cellpose size model: diameter %.1f px", diameter)
        return diameter
    diameter = diameter_from_image(image[..., 0], invert=params.invert)
    logger.info("Estimated object diameter from the image: %.1f px", diameter)
    return diameter


def eval_kwargs(params: CellposeParams, diameter: float, ndim: int) -> dict[str, Any]:
    """Keyword arguments of ``CellposeModel.eval`` for an input from :func:`cellpose_input`.

    ``ndim`` is the input's number of dimensions (3 for 2D images, 4 for stacks).
    """
    stack = ndim == 4
    normalize = {
        "normalize": params.normalize,
        "percentile": list(params.norm_percentiles),
        "tile_norm_blocksize": params.tile_norm_blocksize,
        "norm3D": stack and (params.do_3D or params.stitch_threshold > 0),
        "invert": params.invert,
    }
    return {
        "channels": None,
        "channel_axis": ndim - 1,
        "z_axis": 0 if stack else None,
        "normalize": normalize,
        "invert": params.invert,
        "diameter": diameter,
        "flow_threshold": params.flow_threshold,
        "cellprob_threshold": params.cellprob_threshold,
        "min_size": params.min_size,
        "max_size_fraction": params.max_size_fraction,
        "niter": params.niter or None,
        "batch_size": params.batch_size,
        "bsize": params.bsize,
        "tile_overlap": params.tile_overlap,
        "augment": params.augment,
        "resample": params.resample,
        "do_3D": params.do_3D and stack,
        "anisotropy": params.anisotropy,
        "flow3D_smooth": params.flow3D_smooth,
        "stitch_threshold": params.stitch_threshold if stack else 0.0,
    }


def run_eval(
    network: Any, x: np.ndarray, kwargs: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Run ``network.eval``; returns int32 masks of the spatial shape and the cell probability
    logits resized to the masks' shape (None when Cellpose gives none)."""
    if kwargs["do_3D"] and min(x.shape[:3]) < 2:
        raise ValueError(
            f"3D mode needs at least 2 planes and pixels on each axis, got {x.shape[:3]}."
        )
    dense = network.net
    if getattr(dense, "mkldnn", False):  # Cellpose turns the net it runs into MKL-DNN modules in
        network.net = copy.deepcopy(dense)  # place, which can then be neither trained nor saved
    try:
        masks, flows, _ = network.eval(x, **kwargs)
    finally:
        network.net = dense
    masks = np.asarray(masks).astype(np.int32).reshape(x.shape[:-1])
    if x.ndim == 4 and not kwargs["do_3D"] and not kwargs["stitch_threshold"]:
        masks = unique_plane_ids(masks)
    prob = np.asarray(flows[2], np.float32) if len(flows) > 2 else None
    if prob is not None and prob.shape != masks.shape:  # resample=False: the network's scale
        prob = resize(prob, masks.shape, order=1, preserve_range=True, anti_aliasing=False)
    return masks, prob


def unique_plane_ids(masks: np.ndarray) -> np.ndarray:
    """Give every object of a plane-by-plane ``(Z, Y, X)`` result its own id across planes."""
    out = masks.copy()
    offset = 0
    for plane in out:
        present = plane > 0
        plane[present] += offset
        offset = max(offset, int(plane.max()))
    return out


def to_prediction(masks: np.ndarray, cellprob: np.ndarray | None) -> Prediction:
    """Prediction with per-object scores = mean cell probability inside each object."""
    boxes = bounding_boxes(masks)
    ids = np.array(sorted(boxes), dtype=np.int64)
    extras: dict[str, np.ndarray] = {}
    scores = np.ones(len(ids))
    if cellprob is not None and len(ids):
        prob = 1.0 / (1.0 + np.exp(-cellprob.astype(np.float32)))
        scores = np.asarray(ndi.mean(prob, masks, ids), float)
        extras["probability"] = prob.astype(np.float32)
    objects = {
        int(i): ObjectMeta(int(i), float(np.clip(s, 0.0, 1.0)), box=boxes[int(i)], source=NAME)
        for i, s in zip(ids, scores, strict=True)
    }
    return Prediction(masks, objects, source=NAME, extras=extras)

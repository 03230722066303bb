"""Import ``segment_anything`` even where torchvision's compiled operators do not load.

``segment_anything`` imports ``torchvision`` at import time for two things: an image resize
(``torchvision.transforms.functional.resize`` / ``to_pil_image``) and the box operators of the
automatic mask generator (``torchvision.ops.boxes.batched_nms`` / ``box_area``). The torchvision
wheel on PyPI is a CUDA build: next to a CPU-only torch its ``_C`` library does not load, and
either ``import torchvision`` itself fails (``RuntimeError: operator torchvision::nms does not
exist``, torchvision >= 0.18) or the import works and ``nms`` fails when called.

:func:`load_segment_anything` probes which case holds and

* ``"compiled"``: torchvision works; nothing is changed;
* ``"fallback_ops"``: torchvision imports but its operators fail; the automatic mask generator's
  ``batched_nms`` is replaced by the pure-torch :func:`batched_nms` below;
* ``"shim"``: torchvision is missing or fails to import; ``segment_anything`` is imported with a
  minimal stand-in (PIL resize + the pure-torch box operators) that is visible in
  ``sys.modules`` only during that import.

The last two log a warning once per process.
"""

from __future__ import annotations

import logging
import sys
import types
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

_STATE: dict[str, Any] = {"mode": None}
_SHIM_NAMES = (
    "torchvision",
    "torchvision.transforms",
    "torchvision.transforms.functional",
    "torchvision.ops",
    "torchvision.ops.boxes",
)


def box_area(boxes: Any) -> Any:
    """Areas of ``(N, 4)`` XYXY boxes (torch tensor), as ``(N,)``."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def nms(boxes: Any, scores: Any, iou_threshold: float) -> Any:
    """Greedy non-maximum suppression in pure torch (same contract as ``torchvision.ops.nms``).

    Parameters
    ----------
    boxes : torch.Tensor
        ``(N, 4)`` float XYXY boxes in pixels.
    scores : torch.Tensor
        ``(N,)`` scores.
    iou_threshold : float
        Boxes overlapping a kept, higher-scoring box with IoU > threshold are dropped.

    Returns
    -------
    torch.Tensor
        int64 indices of the kept boxes, by decreasing score.
    """
    import torch

    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    boxes = boxes.to(torch.float64)
    order = torch.argsort(scores, descending=True, stable=True)
    ordered = boxes[order]
    area = box_area(ordered)
    top_left = torch.maximum(ordered[:, None, :2], ordered[None, :, :2])
    bottom_right = torch.minimum(ordered[:, None, 2:], ordered[None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area[:, None] + area[None, :] - inter
    iou = torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))
    overlaps = (iou > iou_threshold).cpu().numpy()
    suppressed = np.zeros(len(order), bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= overlaps[i]
    return order[torch.as_tensor(keep, dtype=torch.int64, device=order.device)]


def batched_nms(boxes: Any, scores: Any, idxs: Any, iou_threshold: float) -> Any:
    """NMS done independently per category ``idxs`` (``torchvision.ops.batched_nms`` contract)."""
    import torch

    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    offsets = idxs.to(boxes) * (boxes.max() + 1)
    return nms(boxes + offsets[:, None], scores, iou_threshold)


def _pil_resize(image: Any, size: Any) -> Any:
    """``torchvision.transforms.functional.resize`` for a PIL image and ``(h, w)``: bilinear."""
    from PIL import Image

    height, width = int(size[0]), int(size[1])
    return image.resize((width, height), Image.BILINEAR)


def _to_pil_image(array: Any) -> Any:
    """``(H, W, 3)`` uint8 array -> PIL image (what segment_anything passes)."""
    from PIL import Image

    return Image.fromarray(array)


def _compiled_nms_works() -> bool:
    """Whether torchvision imports and its compiled ``nms`` runs on two tiny boxes."""
    try:
        import torch
        import torchvision.ops

        boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.1]])
        torchvision.ops.nms(boxes, torch.tensor([1.0, 0.5]), 0.5)
        return True
    except Exception as err:  # ImportError, RuntimeError (missing operator), OSError
        _STATE["error"] = f"{type(err).__name__}: {err}"
        return False


def _torchvision_imports() -> bool:
    try:
        import torchvision  # noqa: F401
    except Exception as err:
        _STATE["error"] = f"{type(err).__name__}: {err}"
        partial = [
            n for n, m in sys.modules.items() if n.split(".")[0] == "torchvision" and m is not None
        ]
        for name in partial:  # half-imported submodules of the failed import
            del sys.modules[name]
        return False
    return True


def _shim_modules() -> dict[str, types.ModuleType]:
    modules = {name: types.ModuleType(name) for name in _SHIM_NAMES}
    modules["torchvision.transforms.functional"].resize = _pil_resize
    modules["torchvision.transforms.functional"].to_pil_image = _to_pil_image
    for name in ("torchvision.ops", "torchvision.ops.boxes"):
        modules[name].nms = nms
        modules[name].batched_nms = batched_nms
        modules[name].box_area = box_area
    modules["torchvision"].transforms = modules["torchvision.transforms"]
    modules["torchvision"].ops = modules["torchvision.ops"]
    modules["torchvision.transforms"].functional = modules["torchvision.transforms.functional"]
    modules["torchvision.ops"].boxes = modules["torchvision.ops.boxes"]
    return modules


def _import_with_shim() -> types.ModuleType:
    """Import segment_anything with the stand-in torchvision, then take the stand-in away."""
    saved = {name: sys.modules[name] for name in _SHIM_NAMES if name in sys.modules}
    sys.modules.update(_shim_modules())
    try:
        import segment_anything
    finally:
        for name in _SHIM_NAMES:
            if name in saved:
                sys.modules[name] = saved[name]
            else:
                sys.modules.pop(name, None)
    return segment_anything


def load_segment_anything() -> types.ModuleType:
    """Import and return ``segment_anything``, working around a broken torchvision.

    Returns
    -------
    module
        The ``segment_anything`` package; :func:`compat_mode` tells which path was taken.
    """
    if _STATE["mode"] is not None and "segment_anything" in sys.modules:
        return sys.modules["segment_anything"]
    if _torchvision_imports():
        import segment_anything
        import segment_anything.automatic_mask_generator as amg

        if _compiled_nms_works():
            _STATE["mode"] = "compiled"
        else:
            amg.batched_nms = batched_nms
            _STATE["mode"] = "fallback_ops"
    else:
        segment_anything = _import_with_shim()
        _STATE["mode"] = "shim"
    if _STATE["mode"] != "compiled" and not _STATE.get("warned"):
        _STATE["warned"] = True
        logger.warning(
            "torchvision's compiled operators are unavailable (%s); Segment Anything uses "
            "pure-torch nms/batched_nms%s instead (slower 'segment everything' on many masks).",
            _STATE.get("error", "unknown error"),
            " and a PIL resize" if _STATE["mode"] == "shim" else "",
        )
    return segment_anything


def compat_mode() -> str | None:
    """``"compiled"``, ``"fallback_ops"``, ``"shim"`` or None before the first load."""
    return _STATE["mode"]


def reset_for_tests() -> None:
    """Forget the probe result so that the next :func:`load_segment_anything` probes again."""
    _STATE.clear()
    _STATE["mode"] = None

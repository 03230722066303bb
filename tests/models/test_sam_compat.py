"""The torchvision workaround: pure-torch box operators and the three import paths."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest
import torch as torch

from napari_cellist.models.sam import torchvision_compat as compat  # noqa: E402


def _reference_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Textbook greedy NMS, one pair at a time."""

    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0

    keep: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if all(iou(boxes[i], boxes[k]) <= threshold for k in keep):
            keep.append(int(i))
    return keep


def _random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    xy = rng.uniform(0, 50, (n, 2))
    wh = rng.uniform(1, 20, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.7])
def test_nms_matches_reference(threshold):
    rng = np.random.default_rng(1)
    for _ in range(5):
        boxes, scores = _random_boxes(rng, 60), rng.random(60)
        keep = compat.nms(torch.tensor(boxes), torch.tensor(scores), threshold)
        assert keep.dtype == torch.int64
        assert keep.tolist() == _reference_nms(boxes, scores, threshold)


def test_nms_small_cases():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]])
    scores = torch.tensor([0.5, 0.9, 0.1])
    assert compat.nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert compat.nms(torch.zeros((0, 4)), torch.zeros(0), 0.5).tolist() == []


def test_batched_nms_is_per_category():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    kept = compat.batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.5)
    assert sorted(kept.tolist()) == [0, 1]
    rng = np.random.default_rng(2)
    b, s, c = _random_boxes(rng, 80), rng.random(80), rng.integers(0, 3, 80)
    kept = set(compat.batched_nms(torch.tensor(b), torch.tensor(s), torch.tensor(c), 0.4).tolist())
    expected = set()
    for cat in range(3):
        idx = np.flatnonzero(c == cat)
        expected |= {int(idx[k]) for k in _reference_nms(b[idx], s[idx], 0.4)}
    assert kept == expected


def test_box_area():
    assert compat.box_area(torch.tensor([[1.0, 2, 4, 6]])).tolist() == [12.0]


@pytest.fixture
def isolated_import(monkeypatch):
    """Let a test re-import segment_anything; restore the original modules afterwards."""
    saved_modules = {
        k: v
        for k, v in sys.modules.items()
        if k.split(".")[0] in ("segment_anything", "torchvision")
    }
    saved_state = dict(compat._STATE)
    for name in saved_modules:
        monkeypatch.delitem(sys.modules, name)
    compat.reset_for_tests()
    yield monkeypatch
    for name in [k for k in sys.modules if k.split(".")[0] in ("segment_anything", "torchvision")]:
        del sys.modules[name]
    sys.modules.update(saved_modules)
    compat._STATE.clear()
    compat._STATE.update(saved_state)


def test_missing_torchvision_uses_temporary_shim(isolated_import, caplog):
    isolated_import.setitem(sys.modules, "torchvision", None)  # "import torchvision" fails
    with caplog.at_level(logging.WARNING):
        sam = compat.load_segment_anything()
        compat.load_segment_anything()
    assert compat.compat_mode() == "shim"
    assert sum("pure-torch" in r.message for r in caplog.records) == 1
    assert sys.modules["torchvision"] is None  # the shim is gone after the import
    import segment_anything.automatic_mask_generator as amg

    assert amg.batched_nms is compat.batched_nms and amg.box_area is compat.box_area
    resized = sam.utils.transforms.ResizeLongestSide(64).apply_image(
        np.zeros((30, 40, 3), np.uint8)
    )
    assert resized.shape == (48, 64, 3)


def test_broken_compiled_ops_use_fallback(isolated_import, caplog):
    def broken_nms(*args, **kwargs):
        raise RuntimeError("operator torchvision::nms does not exist")

    fake = compat._shim_modules()
    fake["torchvision.ops"].nms = broken_nms
    fake["torchvision.ops.boxes"].batched_nms = broken_nms
    for name, module in fake.items():
        isolated_import.setitem(sys.modules, name, module)
    with caplog.at_level(logging.WARNING):
        compat.load_segment_anything()
    assert compat.compat_mode() == "fallback_ops"
    import segment_anything.automatic_mask_generator as amg

    assert amg.batched_nms is compat.batched_nms
    assert "torchvision::nms does not exist" in caplog.text


def test_working_torchvision_is_left_alone(isolated_import):
    fake = compat._shim_modules()  # its nms works
    for name, module in fake.items():
        isolated_import.setitem(sys.modules, name, module)
    fake["torchvision.ops.boxes"].batched_nms = sentinel = lambda *a, **k: None
    compat.load_segment_anything()
    import segment_anything.automatic_mask_generator as amg

    assert compat.compat_mode() == "compiled"
    assert amg.batched_nms is sentinel

"""Tiled prediction: objects on tile borders kept once, unique ids, same map as the whole image."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_cellist.metrics import score_images
from napari_cellist.models.threshold import ThresholdModel, ThresholdParams
from napari_cellist.progress import drain
from napari_cellist.tiling import plan_tiles, predict_tiled
from napari_cellist.types import ObjectMeta, Prediction


@dataclass(frozen=True)
class LevelParams:
    level: float = 0.5


class LevelModel:
    """A model whose answer does not depend on the tile: components above a fixed level."""

    name = "level"

    def __init__(self) -> None:
        self.params = LevelParams()

    def predict(self, image: np.ndarray, params: LevelParams | None = None) -> Prediction:
        labels, count = ndi.label(np.asarray(image) > (params or self.params).level)
        objects = {i: ObjectMeta(i, score=0.5, source=self.name) for i in range(1, count + 1)}
        return Prediction(labels.astype(np.int32), objects, source=self.name)


def discs(shape: tuple[int, int], count: int, radius: int, seed: int = 0) -> np.ndarray:
    """float image with ``count`` non-touching bright discs (some across any tile border)."""
    rng = np.random.default_rng(seed)
    image = np.zeros(shape, np.float32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for _ in range(count):
        r, c = rng.integers(radius, shape[0] - radius), rng.integers(radius, shape[1] - radius)
        disc = (yy - r) ** 2 + (xx - c) ** 2 <= radius**2
        if not ndi.binary_dilation(image > 0, iterations=2)[disc].any():
            image[disc] = 1.0
    return image


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """The two label maps hold the same objects (ids may differ)."""
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


def test_plan_covers_the_image_once():
    tiles = plan_tiles((100, 70), tile_size=32, halo=5)
    owned = np.zeros((100, 70), int)
    for tile in tiles:
        (r0, r1), (c0, c1) = tile.core
        owned[r0:r1, c0:c1] += 1
        (wr0, wr1), (wc0, wc1) = tile.window
        assert wr0 == max(0, r0 - 5) and wc1 == min(70, c1 + 5)
    assert (owned == 1).all() and len(tiles) == 4 * 3
    with pytest.raises(ValueError, match="Tile size"):
        plan_tiles((10, 10), 0, 1)


def test_tiled_equals_whole_image_with_objects_on_borders(tmp_path):
    image = discs((300, 260), count=60, radius=9)
    whole = LevelModel().predict(image)
    result = drain(predict_tiled(LevelModel(), image, tmp_path / "l.zarr", tile_size=64, halo=20))
    tiled = result.to_prediction()
    assert result.count == whole.count == len(tiled.objects)
    assert same_partition(whole.labels, tiled.labels)
    # ids 1..N, unique, each with its own box and the model's score
    assert sorted(tiled.objects) == list(range(1, result.count + 1))
    assert set(np.unique(tiled.labels)) == set(range(result.count + 1))
    some = tiled.objects[1]
    r0, c0, r1, c1 = some.box
    assert (tiled.labels[r0:r1, c0:c1] == 1).any() and some.score == 0.5
    assert not (tiled.labels[:r0] == 1).any() and not (tiled.labels[:, c1:] == 1).any()


def test_tiled_on_an_executor_gives_the_same_map(tmp_path):
    image = discs((200, 200), count=30, radius=8, seed=3)
    here = drain(predict_tiled(LevelModel(), image, tmp_path / "a.zarr", tile_size=64, halo=16))
    with ThreadPoolExecutor(2) as pool:
        there = drain(
            predict_tiled(
                LevelModel(), image, tmp_path / "b.zarr", tile_size=64, halo=16, executor=pool
            )
        )
    assert np.array_equal(here.to_prediction().labels, there.to_prediction().labels)
    lazy = there.labels()
    assert lazy.shape == (200, 200) and lazy.chunks  # a dask array read from the store
    assert np.array_equal(np.asarray(lazy), here.to_prediction().labels)


def test_progress_and_bad_inputs(tmp_path):
    image = discs((100, 100), count=5, radius=6)
    gen = predict_tiled(LevelModel(), image, tmp_path / "p.zarr", tile_size=50, halo=10)
    steps = []
    try:
        while True:
            steps.append(next(gen))
    except StopIteration as stop:
        assert stop.value.count == 5
    assert [(p.step, p.total) for p in steps] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    with pytest.raises(ValueError, match="2D grey"):
        drain(predict_tiled(LevelModel(), np.zeros((2, 50, 50)), tmp_path / "q.zarr"))


def test_threshold_tiled_close_to_whole_on_real_nuclei(tmp_path, dsb):
    image, _ = dsb
    model = ThresholdModel(ThresholdParams(diameter=24))
    whole = model.predict(image)
    result = drain(predict_tiled(model, image, tmp_path / "t.zarr", tile_size=256))
    tiled = result.to_prediction()
    assert abs(result.count - whole.count) <= 0.1 * whole.count
    assert score_images([whole.labels], [tiled.labels]).ap50 > 0.8

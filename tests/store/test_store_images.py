"""Images in the store: content hashes, idempotent adds, stored pixels and files that move."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tifffile

from napari_cellist.store import ImageRecord, ProjectStore, StoreError, pixels


@pytest.fixture
def image():
    return np.random.default_rng(0).integers(0, 4000, (24, 32), dtype=np.uint16)


def test_hash_depends_on_values_dtype_and_shape_not_layout(image):
    digest = ProjectStore.hash_image(image)
    assert len(digest) == 64
    assert ProjectStore.hash_image(np.asfortranarray(image)) == digest
    assert ProjectStore.hash_image(image.astype(np.int32)) != digest
    assert ProjectStore.hash_image(image.reshape(32, 24)) != digest
    changed = image.copy()
    changed[0, 0] += 1
    assert ProjectStore.hash_image(changed) != digest


def test_add_without_path_stores_pixels(store, image):
    record = store.add_image(image)
    assert isinstance(record, ImageRecord) and record.has_pixels and record.path is None
    assert record.shape == (24, 32) and record.dtype == "<u2"
    assert record.name.startswith("image-")
    loaded = store.load_pixels(record.id)
    assert loaded.dtype == image.dtype
    np.testing.assert_array_equal(loaded, image)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.name = "x"


def test_add_is_idempotent_by_content(store, image):
    first = store.add_image(image, name="a")
    again = store.add_image(image.copy(), name="b")
    assert again == first and again.name == "a"
    other = store.add_image(image[::-1])
    assert other.id != first.id
    assert [r.id for r in store.images()] == [first.id, other.id]
    assert store.image(first.id) == first


def test_add_with_readable_path_keeps_pixels_on_disk(store, image, tmp_path, monkeypatch):
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, image)
    record = store.add_image(image, path=path)
    assert not record.has_pixels
    assert record.path == str(path) and record.name == "cells.tif"
    assert store.find_image(path=path) == record
    assert store.find_image(content_hash=record.content_hash) == record

    monkeypatch.setattr(pixels, "read_path", lambda p: tifffile.imread(p))
    np.testing.assert_array_equal(store.load_pixels(record.id), image)

    stored = store.add_image(image, path=path, store_pixels=True)  # now keep a copy as well
    assert stored.id == record.id and stored.has_pixels


def test_moved_file_is_explained_and_fixed_by_adding_again(store, image, tmp_path, monkeypatch):
    monkeypatch.setattr(pixels, "read_path", lambda p: tifffile.imread(p))
    old, new = tmp_path / "old.tif", tmp_path / "new.tif"
    tifffile.imwrite(old, image)
    record = store.add_image(image, path=old)
    old.rename(new)
    with pytest.raises(StoreError, match="no longer at .*old.tif.*add it again"):
        store.load_pixels(record.id)
    moved = store.add_image(tifffile.imread(new), path=new)
    assert moved.id == record.id and moved.path == str(new) and not moved.has_pixels
    np.testing.assert_array_equal(store.load_pixels(record.id), image)


def test_unreadable_or_changed_file_is_explained(store, image, tmp_path, monkeypatch):
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, image)
    record = store.add_image(image, path=path)

    def broken(_path):
        raise OSError("truncated file")

    monkeypatch.setattr(pixels, "read_path", broken)
    with pytest.raises(StoreError, match="Cannot read image .*truncated file"):
        store.load_pixels(record.id)
    monkeypatch.setattr(pixels, "read_path", lambda p: np.zeros((5, 5)))
    with pytest.raises(StoreError, match="now holds an image of shape"):
        store.load_pixels(record.id)


def test_missing_path_at_add_time_stores_pixels(store, image, tmp_path):
    record = store.add_image(image, path=tmp_path / "not_there.tif")
    assert record.has_pixels and record.path.endswith("not_there.tif")
    np.testing.assert_array_equal(store.load_pixels(record.id), image)


def test_real_reader_round_trip(store, image, tmp_path):
    from napari_cellist import io

    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, image)
    record = store.add_image(io.read_image(path).data, path=path)
    np.testing.assert_array_equal(store.load_pixels(record.id), image)


def test_lookups_and_bad_input(store, image):
    assert store.find_image(content_hash="0" * 64) is None
    with pytest.raises(ValueError, match="content_hash or a path"):
        store.find_image()
    with pytest.raises(StoreError, match="no image 42"):
        store.image(42)
    with pytest.raises(ValueError, match="numeric"):
        store.add_image(np.array(["a", "b"], dtype=object))
    with pytest.raises(ValueError, match="numeric"):
        store.add_image(np.zeros((0, 3)))


def test_pixels_are_compressed(store):
    flat = np.zeros((256, 256), np.float32)
    blob = pixels.pack_pixels(flat)
    assert len(blob) < flat.nbytes / 50
    np.testing.assert_array_equal(pixels.unpack_pixels(blob), flat)

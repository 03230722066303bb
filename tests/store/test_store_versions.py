"""Model versions: lineage, checkpoint checksums, JSON-safe parameters."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest

from napari_cellist.store import ModelVersionRecord, StoreError


def test_versions_lineage_and_latest(store, tmp_path):
    checkpoint = tmp_path / "air-1.pt"
    checkpoint.write_bytes(b"\x00weights")
    root = store.add_model_version(
        "air",
        {"lr": np.float32(0.5), "grid": (4, 4)},
        data_used=["a.tif", 3],
        metrics={"ap50": np.float64(0.25), "loss": float("nan")},
        checkpoint_path=checkpoint,
    )
    assert isinstance(root, ModelVersionRecord)
    assert root.params == {"lr": 0.5, "grid": [4, 4]}
    assert root.metrics == {"ap50": 0.25, "loss": None}
    assert root.data_used == ("a.tif", 3)
    assert root.checkpoint_path == str(checkpoint)
    assert root.checkpoint_sha256 == hashlib.sha256(b"\x00weights").hexdigest()
    assert root.created_at.tzinfo is not None

    child = store.add_model_version("air", {"lr": 0.1}, parent_id=root.id)
    grandchild = store.add_model_version(
        "air", {}, parent_id=child.id, checkpoint_path=tmp_path / "later.pt"
    )
    other = store.add_model_version("threshold", {"threshold": 0.3})
    assert grandchild.checkpoint_sha256 is None  # the file does not exist (yet)

    assert [v.id for v in store.lineage(grandchild.id)] == [root.id, child.id, grandchild.id]
    assert [v.id for v in store.model_versions()] == [root.id, child.id, grandchild.id, other.id]
    assert [v.id for v in store.model_versions("air")] == [root.id, child.id, grandchild.id]
    assert store.latest_model_version("air") == grandchild
    assert store.latest_model_version("cellpose") is None
    assert store.model_version(root.id) == root
    with pytest.raises(dataclasses.FrozenInstanceError):
        root.name = "x"


def test_bad_versions_are_refused(store):
    with pytest.raises(StoreError, match="no model version 7"):
        store.add_model_version("air", {}, parent_id=7)
    with pytest.raises(StoreError, match="no model version 7"):
        store.model_version(7)
    with pytest.raises(ValueError, match="params must be JSON-serialisable"):
        store.add_model_version("air", {"fn": print})
    assert store.model_versions() == []

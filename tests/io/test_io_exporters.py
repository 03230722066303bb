"""Tests of napari_cellist.io.exporters on the real DSB2018 mask (125 nuclei).

The mask is the packaged sample (byte-identical to shared/data/dsb2018_stardist/masks/).
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from napari_cellist._sample_data import sample_mask_path
from napari_cellist.io.exporters import (
    count_row,
    export_coco,
    export_counts,
    export_geojson,
    export_imagej_rois,
    export_polygons_csv,
)
from napari_cellist.io.writers import read_labels_tiff
from napari_cellist.types import ObjectMeta

N_OBJECTS = 125


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    labels = read_labels_tiff(sample_mask_path())
    assert len(np.unique(labels)) - 1 == N_OBJECTS
    return labels


def _objects(labels):
    return {
        i: ObjectMeta(
            i, score=0.5 + 0.5 * (i % 2), class_name="odd" if i % 2 else "even", source="threshold"
        )
        for i in range(1, int(labels.max()) + 1)
    }


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_coco_rle_round_trip(tmp_path, truth):
    from pycocotools import mask as mask_utils

    path = export_coco(tmp_path / "c.json", [("img.tif", truth, _objects(truth))], use_rle=True)
    coco = json.loads(path.read_text())
    assert [c["name"] for c in coco["categories"]] == ["even", "odd"]
    assert coco["images"] == [{"id": 1, "file_name": "img.tif", "height": 512, "width": 512}]
    assert len(coco["annotations"]) == N_OBJECTS
    for ann in coco["annotations"]:
        rle = {
            "size": ann["segmentation"]["size"],
            "counts": ann["segmentation"]["counts"].encode(),
        }
        mask = mask_utils.decode(rle).astype(bool)
        target = truth == ann["label_id"]
        np.testing.assert_array_equal(mask, target)
        rows, cols = np.nonzero(target)
        assert ann["bbox"] == [cols.min(), rows.min(), np.ptp(cols) + 1, np.ptp(rows) + 1]
        assert ann["area"] == target.sum()
        assert coco["categories"][ann["category_id"] - 1]["name"] == (
            "odd" if ann["label_id"] % 2 else "even"
        )
        assert ann["score"] == (1.0 if ann["label_id"] % 2 else 0.5)


def test_coco_polygons_rasterise_back(tmp_path, truth):
    from pycocotools.coco import COCO

    path = export_coco(tmp_path / "c.json", [("a.tif", truth, None), ("b.tif", truth[:200], None)])
    coco = COCO(str(path))  # the reference loader accepts the file
    assert len(coco.getImgIds()) == 2 and [c["name"] for c in coco.dataset["categories"]] == [
        "object"
    ]
    first = [a for a in coco.dataset["annotations"] if a["image_id"] == 1]
    assert len(first) == N_OBJECTS
    ious = [_iou(coco.annToMask(a).astype(bool), truth == a["label_id"]) for a in first]
    assert min(ious) > 0.9, sorted(ious)[:3]


def test_geojson(tmp_path, truth):
    path = export_geojson(tmp_path / "g.geojson", truth, _objects(truth))
    collection = json.loads(path.read_text())
    features = collection["features"]
    assert collection["type"] == "FeatureCollection" and len(features) == N_OBJECTS
    feature = next(f for f in features if f["properties"]["id"] == 7)
    expected = {"id": 7, "class": "odd", "score": 1.0, "source": "threshold"}
    assert expected.items() <= feature["properties"].items()
    ring = np.array(feature["geometry"]["coordinates"][0])
    assert np.array_equal(ring[0], ring[-1])
    rows, cols = np.nonzero(truth == 7)  # x = column, y = row, pixel corners at integers
    assert cols.min() <= ring[:, 0].min() and ring[:, 0].max() <= cols.max() + 1
    assert rows.min() <= ring[:, 1].min() and ring[:, 1].max() <= rows.max() + 1


def test_polygons_csv(tmp_path, truth):
    from napari_cellist.geometry import rasterize_polygon

    path = export_polygons_csv(tmp_path / "p.csv", truth)
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["id", "class", "vertex_index", "y", "x"]
    assert len({r["id"] for r in rows}) == N_OBJECTS
    vertices = np.array([[float(r["y"]), float(r["x"])] for r in rows if r["id"] == "7"])
    assert _iou(rasterize_polygon(vertices, truth.shape), truth == 7) > 0.9


def test_imagej_rois(tmp_path, truth):
    import roifile

    path = export_imagej_rois(tmp_path / "rois.zip", truth)
    rois = roifile.roiread(path)
    assert len(rois) == N_OBJECTS and rois[6].name == "0007"
    assert rois[0].roitype == roifile.ROI_TYPE.POLYGON
    coords = rois[6].coordinates()  # (x, y)
    rows, cols = np.nonzero(truth == 7)
    assert cols.min() <= coords[:, 0].min() and coords[:, 0].max() <= cols.max() + 1
    with pytest.raises(ValueError, match="no objects"):
        export_imagej_rois(tmp_path / "empty.zip", np.zeros((4, 4), int))


def test_exports_reject_3d(tmp_path):
    with pytest.raises(ValueError, match="plane by plane"):
        export_geojson(tmp_path / "g.json", np.ones((2, 4, 4), int))


def test_tiny_objects_still_exported(tmp_path):
    labels = np.zeros((6, 6), int)
    labels[1, 1], labels[3, 2:4] = 1, 2
    coco = json.loads(export_coco(tmp_path / "c.json", [("a", labels, None)]).read_text())
    assert len(coco["annotations"]) == 2
    assert all(len(a["segmentation"][0]) >= 6 for a in coco["annotations"])


def test_counts_csv_and_json(tmp_path, truth):
    row = count_row("dsb", truth, _objects(truth), pixel_area=0.25)
    assert row["count"] == N_OBJECTS and row["count_odd"] + row["count_even"] == N_OBJECTS
    assert row["mean_area"] == pytest.approx((truth > 0).sum() / N_OBJECTS, abs=1e-3)
    other = {"image": "x", "count": np.int64(3), "mean_area": 2.0, "by_class": {"a": 3}}
    csv_path = export_counts(tmp_path / "counts.csv", [row, other])
    with open(csv_path, newline="") as file:
        lines = list(csv.DictReader(file))
    assert list(lines[0])[:2] == ["image", "count"] and lines[1]["by_class_a"] == "3"
    assert lines[1]["count_odd"] == "" and lines[0]["count"] == str(N_OBJECTS)
    json_rows = json.loads(export_counts(tmp_path / "counts.json", [row, other]).read_text())
    assert json_rows[1]["count"] == 3 and json_rows[0] == row
    with pytest.raises(ValueError, match=".csv or .json"):
        export_counts(tmp_path / "counts.xlsx", [row])

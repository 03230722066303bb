"""The scripts in examples/ run as a user runs them (a subprocess each) on the packaged DSB2018
nuclei image and its ground truth, and write what they promise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_cellist._sample_data import sample_image_path, sample_mask_path
from napari_cellist.io import read_labels_tiff
from napari_cellist.metrics import score_image
from napari_cellist.store import ProjectStore

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, *args: str, cwd: Path, timeout: float = 600) -> str:
    """Run ``examples/<name>`` with this interpreter; returns its stdout + stderr.

    ``CELLIST_DATA`` is removed from the environment so the scripts use the packaged sample.
    """
    env = {k: v for k, v in os.environ.items() if k != "CELLIST_DATA"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout
    return done.stdout


def truth() -> np.ndarray:
    return read_labels_tiff(sample_mask_path())


def test_predict_folder_writes_a_label_map_per_image(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "nuclei.tif").write_bytes(sample_image_path().read_bytes())
    out = tmp_path / "pred"
    run_example(
        "predict_folder.py", str(images), "--model", "threshold", "--out", str(out), cwd=tmp_path
    )
    labels = read_labels_tiff(out / "nuclei.tif")
    assert labels.shape == truth().shape
    scores = score_image(truth(), labels)
    assert scores.ap50 > 0.5  # the threshold model on this image: AP50 0.589 (docs/benchmarks.md)
    counts = (out / "counts.csv").read_text().splitlines()
    assert counts[0] == "image,objects,labels"
    assert counts[1].startswith(f"nuclei,{len(np.unique(labels)) - 1},")


def test_predict_folder_applies_parameter_overrides(tmp_path):
    out = tmp_path / "pred"
    run_example(
        "predict_folder.py",
        str(sample_image_path()),
        "--param",
        "diameter=24",
        "--param",
        "min_area=400",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    labels = read_labels_tiff(out / f"{sample_image_path().stem}.tif")
    areas = np.bincount(labels.ravel())[1:]
    assert areas[areas > 0].min() >= 400


def test_finetune_from_folder_records_versions_with_their_parent(tmp_path):
    project = tmp_path / "project"
    for _ in range(2):
        run_example(
            "finetune_from_folder.py",
            "--model",
            "threshold",
            "--steps",
            "3",
            "--project",
            str(project),
            cwd=tmp_path,
        )
    with ProjectStore(project) as store:
        first, second = store.model_versions("threshold")
    assert first.parent_id is None and second.parent_id == first.id
    for version in (first, second):
        assert Path(version.checkpoint_path).is_file() and version.checkpoint_sha256
        assert version.data_used == ("nuclei",)
        assert version.metrics["ap50"] >= version.metrics["initial_ap50"] > 0.5


def test_register_custom_model_predicts_and_builds_its_form(tmp_path):
    out = tmp_path / "blobs.tif"
    log = run_example(
        "register_custom_model.py", "--param", "sigma=2", "--out", str(out), "--form", cwd=tmp_path
    )
    assert "registered models: threshold, sam, cellpose, air, blobs" in log
    labels = read_labels_tiff(out)
    assert score_image(truth(), labels).ap50 > 0.3  # a crude model, but it finds the nuclei
    controls = {
        row["name"]: row
        for row in (
            json.loads(line.split("form control ", 1)[1])
            for line in log.splitlines()
            if line.startswith("form control ")
        )
    }
    assert controls["sigma"]["control"] == "FloatSpinBox" and controls["sigma"]["value"] == 2.0
    assert controls["method"]["control"] == "ComboBox" and not controls["method"]["advanced"]
    assert controls["min_area"]["advanced"] and controls["min_area"]["tooltip"].startswith(
        "Objects"
    )


@pytest.mark.slow
def test_viewer_with_widgets_runs_the_base_model_and_saves_a_screenshot(tmp_path):
    shot = tmp_path / "shot.png"
    log = run_example(
        "viewer_with_widgets.py",
        "--run",
        "--screenshot",
        str(shot),
        "--no-block",
        "--project",
        str(tmp_path / "project"),
        cwd=tmp_path,
    )
    assert "dock widgets: Base model, Annotations, Fine-tune" in log
    name = sample_image_path().stem
    assert f"layers: {name}, {name} labels, {name} polygons, {name} centres" in log
    count = int(log.split("base model: ", 1)[1].split()[0])
    assert 80 <= count <= 160  # 125 annotated nuclei
    assert shot.stat().st_size > 50_000
    assert (tmp_path / "project" / "cellist.sqlite").is_file()

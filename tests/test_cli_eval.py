"""``cellist eval``: several checkpoints or stored versions scored on one annotated folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from napari_cellist.cli import main
from napari_cellist.model_eval import Candidate, evaluate_models, score_table
from napari_cellist.models.threshold import ThresholdModel, ThresholdParams
from napari_cellist.pipeline import samples_from_folders
from napari_cellist.store import ProjectStore


def _cellist(*args: str, cwd) -> subprocess.CompletedProcess:
    """Run ``cellist`` as a user does (a subprocess), offline."""
    return subprocess.run(
        [sys.executable, "-m", "napari_cellist.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CELLIST_OFFLINE": "1"},
    )


@pytest.fixture
def checkpoints(tmp_path):
    """A threshold checkpoint with the DSB nuclei's diameter and one with a far too small one."""
    good = ThresholdModel(ThresholdParams(diameter=24.0)).save(tmp_path / "good.json")
    bad = ThresholdModel(ThresholdParams(diameter=6.0)).save(tmp_path / "bad.json")
    return good, bad


def test_subprocess_eval_compares_checkpoints(annotated_folder, checkpoints, tmp_path):
    good, bad = checkpoints
    args = ("eval", "--gt", str(annotated_folder), "--model", "threshold")
    done = _cellist(*args, "--checkpoint", str(good), str(bad), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == [
        "model", "AP50", "mAP", "F1", "count", "err.", "edits/100", "objects", "truth",
    ]  # fmt: skip
    assert [line.split()[0] for line in lines[1:]] == ["good.json", "bad.json"]
    as_json = _cellist(*args, "--checkpoint", str(good), str(bad), "--json", cwd=tmp_path)
    rows = json.loads(as_json.stdout)
    assert [r["label"] for r in rows] == ["good.json", "bad.json"]
    assert rows[0]["ap50"] > rows[1]["ap50"] and rows[0]["ap50"] > 0.4
    assert rows[0]["edits_per_100"] < rows[1]["edits_per_100"]
    assert rows[0]["n_images"] == 2 and set(rows[0]["per_image"]) == {"crop0", "crop1"}
    assert rows[0]["n_true"] == rows[1]["n_true"] > 20  # the same truth for both
    table_ap50 = [float(line.split()[1]) for line in lines[1:]]
    assert table_ap50 == pytest.approx([r["ap50"] for r in rows], abs=5e-4)


def test_eval_stored_versions_and_base_model(annotated_folder, checkpoints, tmp_path, capsys):
    good, bad = checkpoints
    with ProjectStore(tmp_path / "project") as store:
        v_good = store.add_model_version("threshold", {}, checkpoint_path=good).id
        v_bad = store.add_model_version("threshold", {}, checkpoint_path=bad).id
        v_lost = store.add_model_version("threshold", {}, checkpoint_path=tmp_path / "x.json").id
    base = ["eval", "--gt", str(annotated_folder), "--project", str(tmp_path / "project")]
    assert main([*base, "--version", str(v_bad), str(v_good), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in rows] == [f"v{v_bad}", f"v{v_good}"]
    assert rows[1]["ap50"] > rows[0]["ap50"]
    assert main([*base, "--version", str(v_lost)]) == 2
    assert "has no checkpoint file" in capsys.readouterr().err
    assert main(["eval", "--gt", str(annotated_folder), "--model", "threshold"]) == 0
    [header, line] = capsys.readouterr().out.splitlines()
    assert line.split()[0] == "threshold" and 0 < float(line.split()[1]) <= 1


def test_eval_refuses_unclear_requests(annotated_folder, checkpoints, tmp_path, capsys):
    good, _ = checkpoints
    gt = ["eval", "--gt", str(annotated_folder)]
    assert main(gt) == 2
    assert "Nothing to score: give --pred" in capsys.readouterr().err
    assert main([*gt, "--checkpoint", str(good)]) == 2
    assert "--checkpoint needs --model" in capsys.readouterr().err
    assert main([*gt, "--pred", str(tmp_path), "--model", "threshold"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main([*gt, "--model", "threshold", "--checkpoint", str(tmp_path / "no.json")]) == 2
    assert "no.json' does not exist" in capsys.readouterr().err
    assert main([*gt, "--version", "1"]) == 2
    assert "--version needs --project" in capsys.readouterr().err
    masks_only = annotated_folder / "masks"
    assert main(["eval", "--gt", str(masks_only), "--model", "threshold"]) == 2
    assert "needs an images/ folder" in capsys.readouterr().err


def test_pred_mode_reports_edits_per_100(annotated_folder, tmp_path, capsys):
    out = tmp_path / "pred"
    assert main(["predict", str(annotated_folder / "images"), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["eval", "--gt", str(annotated_folder), "--pred", str(out)]) == 0
    scores = json.loads(capsys.readouterr().out)
    [row] = evaluate_models(
        samples_from_folders([annotated_folder]), [Candidate("base", "threshold")]
    )
    assert scores["edits_per_100"] == pytest.approx(row["edits_per_100"])
    assert scores["per_image"]["crop0"]["edits_per_100"] == pytest.approx(
        row["per_image"]["crop0"]["edits_per_100"]
    )
    assert score_table([row])[1].split()[0] == "base"

"""`cellist predict --model sam` in automatic and box-refinement mode, with a tiny random SAM."""

import json

import numpy as np
import tifffile

from napari_cellist.cli import main
from napari_cellist.models.sam.architecture import write_random_checkpoint


def test_cli_automatic_and_refinement(tmp_path, dsb_crop, capsys):
    image, mask = dsb_crop
    (tmp_path / "images").mkdir()
    tifffile.imwrite(tmp_path / "images" / "crop.tif", image[:128, :128])
    checkpoint = write_random_checkpoint(tmp_path / "tiny_sam.pth")
    auto = tmp_path / "auto"
    code = main(
        [
            "predict",
            str(tmp_path / "images"),
            "--model",
            "sam",
            "--checkpoint",
            str(checkpoint),
            "--param",
            "points_per_side=4",
            "--param",
            "pred_iou_thresh=0.0",
            "--param",
            "stability_score_thresh=0.0",
            "--out",
            str(auto),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["n_images"] == 1
    assert tifffile.imread(auto / "crop.tif").shape == (128, 128)
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    tifffile.imwrite(prompts / "crop.tif", mask[:128, :128].astype(np.uint16))
    refined = tmp_path / "refined"
    code = main(
        [
            "predict",
            str(tmp_path / "images"),
            "--model",
            "sam",
            "--checkpoint",
            str(checkpoint),
            "--prompts-from",
            str(prompts),
            "--out",
            str(refined),
        ]
    )
    assert code == 0, capsys.readouterr().err
    out = tifffile.imread(refined / "crop.tif")
    # refinement keeps the prompt objects' ids (an empty SAM mask keeps the old mask)
    assert set(np.unique(out)) - {0} <= set(np.unique(mask[:128, :128])) - {0}
    assert len(np.unique(out)) > 1


def test_cli_missing_checkpoint_is_a_clear_error(tmp_path, dsb_crop, capsys, monkeypatch):
    monkeypatch.setenv("CELLIST_SAM_CACHE", str(tmp_path / "cache"))
    image, _ = dsb_crop
    tifffile.imwrite(tmp_path / "crop.tif", image[:64, :64])
    code = main(
        ["predict", str(tmp_path / "crop.tif"), "--model", "sam", "--out", str(tmp_path / "o")]
    )
    output = capsys.readouterr()
    assert code != 0
    assert "sam_vit" in (output.err + output.out)

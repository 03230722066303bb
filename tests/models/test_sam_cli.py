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


def _predict_args(tmp_path, *extra):
    (tmp_path / "images").mkdir(exist_ok=True)
    tifffile.imwrite(tmp_path / "images" / "a.tif", np.zeros((32, 32), np.uint8))
    return ["predict", str(tmp_path / "images"), "--out", str(tmp_path / "out"), *extra]


def test_cli_device_choice(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    checkpoint = write_random_checkpoint(tmp_path / "tiny_sam.pth")
    args = _predict_args(tmp_path, "--model", "sam", "--checkpoint", str(checkpoint))
    assert main([*args, "--device", "cuda"]) != 0
    assert "'cuda'" in capsys.readouterr().err  # the missing device, said in one line
    assert main([*args, "--device", "cpu", "--param", "diameter=8"]) == 0
    capsys.readouterr()
    assert main([*_predict_args(tmp_path, "--model", "threshold"), "--device", "cuda"]) == 2
    assert "runs on the CPU only" in capsys.readouterr().err


def test_cli_downloads_missing_weights_with_a_bar(tmp_path, capsys, monkeypatch, weights_server):
    import hashlib

    from napari_cellist import downloads

    data = write_random_checkpoint(tmp_path / "tiny.pth").read_bytes()
    weights_server.files["sam_vit_b_01ec64.pth"] = data
    item = downloads.REGISTRY["sam/vit_b"]
    sha = "sha256:" + hashlib.sha256(data).hexdigest()
    patched = {**downloads.REGISTRY, "sam/vit_b": downloads.with_url(item, item.url, hashes=(sha,))}
    monkeypatch.setattr(downloads, "REGISTRY", patched)
    monkeypatch.setenv("CELLIST_SAM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CELLIST_MODEL_MIRROR", weights_server.base)
    monkeypatch.delenv("CELLIST_OFFLINE", raising=False)
    args = _predict_args(
        tmp_path, "--model", "sam", "--param", "checkpoint=vit_b", "--device", "cpu"
    )
    assert main([*args, "--param", "diameter=8"]) == 0
    err = capsys.readouterr().err
    assert "Downloading sam_vit_b_01ec64.pth" in err and "100%" in err
    assert (tmp_path / "cache" / "sam_vit_b_01ec64.pth").read_bytes() == data

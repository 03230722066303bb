import json
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest
import tifffile

from napari_cellist.cli import main


def test_predict_writes_labels_counts_and_overlays(annotated_folder, tmp_path, capsys):
    out = tmp_path / "pred"
    assert main(["predict", str(annotated_folder), "--model", "threshold", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_images"] == 2 and summary["total_objects"] > 20
    for stem in ("crop0", "crop1"):
        labels = tifffile.imread(out / f"{stem}.tif")
        assert labels.shape == (256, 256) and labels.max() > 5
        assert (out / "overlays" / f"{stem}.png").stat().st_size > 1000
    rows = (out / "counts.csv").read_text().splitlines()
    assert rows[0].startswith("image,count") and len(rows) == 3


def test_train_then_predict_with_checkpoint_then_eval(annotated_folder, tmp_path, capsys):
    ckpt = tmp_path / "threshold.json"
    code = main(
        [
            "train",
            "--model",
            "threshold",
            "--data",
            str(annotated_folder),
            "--out",
            str(ckpt),
            "--steps",
            "4",
        ]
    )
    assert code == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["metrics"]["ap50"] >= trained["metrics"]["initial_ap50"]
    out = tmp_path / "pred"
    assert (
        main(
            [
                "predict",
                str(annotated_folder / "images"),
                "--checkpoint",
                str(ckpt),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["eval", "--gt", str(annotated_folder), "--pred", str(out)]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert set(scores) >= {"ap50", "mean_ap", "f1", "count_error", "per_image"}
    assert scores["ap50"] > 0.4 and scores["n_images"] == 2


def test_diameter_and_param_options(annotated_folder, tmp_path, capsys):
    out = tmp_path / "pred"
    args = [
        "predict",
        str(annotated_folder),
        "--diameter",
        "24",
        "--param",
        "method=li",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    assert main([*args[:-2], "--param", "colour=red", "--out", str(out)]) == 2
    assert "Unknown --param colour" in capsys.readouterr().err


@pytest.mark.parametrize(
    "word, expected",
    [
        ("False", False),
        ("no", False),
        ("0", False),
        ("false", False),
        ("True", True),
        ("yes", True),
    ],
)
def test_yes_no_parameters_read_words_as_booleans(word, expected):
    """`--param invert=False` must not become the string 'False' (which Python counts as true)."""
    from napari_cellist.cli import _parse_assignments
    from napari_cellist.models.base import params_from_mapping
    from napari_cellist.models.threshold import ThresholdParams

    params = params_from_mapping(ThresholdParams, _parse_assignments([f"invert={word}"]))
    assert params.invert is expected


def test_an_unreadable_yes_no_parameter_is_an_error(annotated_folder, tmp_path, capsys):
    args = [
        "predict",
        str(annotated_folder),
        "--param",
        "invert=maybe",
        "--out",
        str(tmp_path / "p"),
    ]
    assert main(args) == 2
    assert "'invert' is true or false" in capsys.readouterr().err


def test_bad_inputs_give_clear_errors_and_nonzero_exit(tmp_path, capsys):
    not_image = tmp_path / "notes.tif"
    not_image.write_text("this is not a TIFF")
    truncated = tmp_path / "cut.tif"
    tifffile.imwrite(truncated, np.arange(256 * 256, dtype=np.uint16).reshape(256, 256))
    truncated.write_bytes(truncated.read_bytes()[:5000])
    out = tmp_path / "out"
    assert main(["predict", str(not_image), str(truncated), "--out", str(out)]) == 2  # none done
    summary = json.loads(capsys.readouterr().out)
    assert len(summary["failed"]) == 2 and all(f["error"] for f in summary["failed"])
    assert main(["predict", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "error" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "--model",
                "threshold",
                "--data",
                str(tmp_path / "missing"),
                "--out",
                str(out / "x.json"),
            ]
        )
        == 2
    )
    assert (
        main(
            [
                "predict",
                str(not_image),
                "--checkpoint",
                str(tmp_path / "none.json"),
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err


def test_rgb_and_4d_inputs(tmp_path, capsys, dsb_crop):
    image, _ = dsb_crop
    rgb = np.stack([image.astype(np.uint8)] * 3, axis=-1)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    tifffile.imwrite(tmp_path / "hyper.tif", np.zeros((2, 3, 4, 16, 16), np.uint8), imagej=True)
    code = main(
        [
            "predict",
            str(tmp_path / "rgb.tif"),
            str(tmp_path / "hyper.tif"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    summary = json.loads(capsys.readouterr().out)
    assert code == 1 and summary["n_images"] == 1
    assert (
        "2D (Y, X) or 3D" in summary["failed"][0]["error"]
        or "channel" in summary["failed"][0]["error"]
    )


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "predict" in capsys.readouterr().out


def test_export_committed_annotations_in_every_format(tmp_path, dsb_crop, capsys):
    import roifile
    from pycocotools.coco import COCO

    from napari_cellist.store import ProjectStore

    image, mask = dsb_crop
    with ProjectStore(tmp_path / "project") as store:
        record = store.add_image(image, name="crop")
        store.commit_annotations(record.id, mask)
    out = tmp_path / "export"
    formats = ["tiff", "coco", "coco-rle", "geojson", "csv", "rois", "counts"]
    assert (
        main(
            [
                "export",
                "--project",
                str(tmp_path / "project"),
                "--format",
                *formats,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert len(json.loads(capsys.readouterr().out)["files"]) == 7
    n = len(np.unique(mask)) - 1
    assert len(np.unique(tifffile.imread(out / "crop.tif"))) - 1 == n
    assert len(COCO(str(out / "annotations_coco-rle.json")).getAnnIds()) == n
    assert len(json.loads((out / "crop.geojson").read_text())["features"]) == n
    assert len(roifile.roiread(out / "crop_rois.zip")) == n
    assert (out / "counts.csv").read_text().splitlines()[1].startswith(f"crop,{n}")
    capsys.readouterr()
    assert main(["export", "--project", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "missing").exists()  # export only reads: no store is created
    ProjectStore(tmp_path / "empty").close()
    assert main(["export", "--project", str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert "Nothing committed" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "steps", "extra"),
    [
        ("cellpose", "3", ["--train-param", "bsize=64", "--train-param", "validation_fraction=0"]),
        ("air", "3", ["--train-param", "batch_size=2", "--train-param", "crop_size=64"]),
    ],
)
def test_train_and_predict_trainable_models_from_the_cli(
    model, steps, extra, annotated_folder, tmp_path, capsys
):
    """`cellist train --model M --data DIR --out CKPT --steps N`, then predict with CKPT."""
    ckpt = tmp_path / f"{model}.ckpt"
    args = ["train", "--model", model, "--data", str(annotated_folder), "--out", str(ckpt)]
    assert main([*args, "--steps", steps, *extra]) == 0
    assert ckpt.is_file() and "metrics" in json.loads(capsys.readouterr().out)
    out = tmp_path / "pred"
    predict = ["predict", str(annotated_folder / "images"), "--model", model]
    assert main([*predict, "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    capsys.readouterr()
    for stem in ("crop0", "crop1"):
        assert tifffile.imread(out / f"{stem}.tif").shape == (256, 256)
    assert len((out / "counts.csv").read_text().splitlines()) == 3


def _cellist(*args: str, cwd) -> subprocess.CompletedProcess:
    """``cellist ARGS`` in a fresh interpreter, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "napari_cellist.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_subprocess_absurd_declared_size_is_one_line(tmp_path):
    """A 1.7 MB TIFF declaring 200,000 x 200,000 pixels: refused from its header, one line."""
    tile = zlib.compress(np.zeros((1024, 1024), np.uint8).tobytes())
    n = -(-200_000 // 1024)
    tifffile.imwrite(
        tmp_path / "absurd.tif",
        (tile for _ in range(n * n)),
        shape=(200_000, 200_000),
        dtype=np.uint8,
        tile=(1024, 1024),
        compression="zlib",
    )
    result = _cellist("predict", "absurd.tif", "--out", "out", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("cellist predict: error: ") and "declares 200000 x 200000 uint8" in line


def test_subprocess_malicious_checkpoint_runs_no_code(tmp_path):
    """A pickle that would call os.system: refused, one line, the marker file never appears."""
    import torch

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch '{tmp_path / 'PWNED'}'",))

    torch.save({"model": Evil()}, tmp_path / "sam.pth")
    tifffile.imwrite(tmp_path / "img.tif", np.zeros((32, 32), np.uint8))
    result = _cellist(
        "predict",
        "img.tif",
        "--model",
        "sam",
        "--checkpoint",
        "sam.pth",
        "--out",
        "out",
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "sam.pth" in line and "system" in line
    assert not (tmp_path / "PWNED").exists()


def test_subprocess_export_keeps_hostile_names_inside_out(tmp_path, dsb_crop):
    from napari_cellist.io.naming import safe_stem
    from napari_cellist.store import ProjectStore

    image, mask = dsb_crop
    with ProjectStore(tmp_path / "project") as store:
        for k, name in enumerate(["../../escaped", str(tmp_path / "abs"), "CON"]):
            record = store.add_image(image + k, name=name, store_pixels=True)
            store.commit_annotations(record.id, mask)
    out = tmp_path / "a" / "b" / "out"
    result = _cellist(
        "export",
        "--project",
        "project",
        "--format",
        "tiff",
        "geojson",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    expected = {"_.._escaped.tif", "_CON.tif", f"{safe_stem(str(tmp_path / 'abs'))}.tif"}
    assert {p.name for p in out.glob("*.tif")} == expected
    assert not (tmp_path / "escaped.tif").exists() and not (tmp_path / "abs.tif").exists()
    assert all(p.resolve().parent == out.resolve() for p in out.iterdir())


def test_export_of_a_mixed_2d_3d_project_exports_what_it_can(tmp_path, dsb_crop, capsys):
    """3D images are left out of the 2D formats (named once on stderr, exit 1), never half-done."""
    from napari_cellist.store import ProjectStore

    image, mask = dsb_crop
    with ProjectStore(tmp_path / "project") as store:
        flat = store.add_image(image, name="flat", store_pixels=True)
        store.commit_annotations(flat.id, mask)
        stack = store.add_image(np.stack([image] * 3), name="stack", store_pixels=True)
        store.commit_annotations(stack.id, np.stack([mask] * 3))
    out = tmp_path / "out"
    args = [
        "export",
        "--project",
        str(tmp_path / "project"),
        "--format",
        "tiff",
        "coco",
        "geojson",
        "counts",
        "--out",
        str(out),
    ]
    assert main(args) == 1
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert [(s["image"], s["format"]) for s in summary["skipped"]] == [
        ("stack", "coco"),
        ("stack", "geojson"),
    ]
    [line] = captured.err.strip().splitlines()
    assert (
        line.startswith("cellist export: warning: Skipped 1 3D image(s) in coco, geojson")
        and "stack" in line
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "annotations_coco.json",
        "counts.csv",
        "flat.geojson",
        "flat.tif",
        "stack.tif",
    ]
    assert tifffile.imread(out / "stack.tif").shape == (3, 256, 256)
    assert [
        i["file_name"] for i in json.loads((out / "annotations_coco.json").read_text())["images"]
    ] == ["flat"]
    assert len((out / "counts.csv").read_text().splitlines()) == 3


def test_unexpected_errors_are_one_line_unless_verbose(tmp_path, capsys, monkeypatch):
    """A bug surfaces as one line naming its type; -v adds the traceback for a report."""
    from napari_cellist import pipeline

    def broken(*args, **kwargs):
        raise TypeError("unsupported operand\nsecond line")

    monkeypatch.setattr(pipeline, "evaluate_folders", broken)
    args = ["eval", "--gt", str(tmp_path), "--pred", str(tmp_path)]
    assert main(args) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert (
        line
        == "cellist eval: error: unexpected TypeError: unsupported operand second line (run with -v for details)"
    )
    assert main(["-v", *args]) == 2
    assert "Traceback" in capsys.readouterr().err

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "evaluate_folders", interrupted)
    assert main(args) == 130
    assert capsys.readouterr().err.strip() == "cellist eval: interrupted"

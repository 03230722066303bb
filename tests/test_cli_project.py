"""``cellist project add`` and ``cellist project status``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import tifffile

from napari_cellist.cli import main


def make_folder(root):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k in range(3):
        pixels = (np.random.default_rng(k).random((24, 30)) * 255).astype(np.uint8)
        tifffile.imwrite(root / "images" / f"cell{k}.tif", pixels)
    mask = np.zeros((24, 30), np.int32)
    mask[2:8, 3:9] = 1
    mask[12:20, 10:25] = 2
    tifffile.imwrite(root / "masks" / "cell1.tif", mask)
    single = root.parent / "single.tif"
    tifffile.imwrite(single, np.full((24, 30), 7, np.uint8))
    return single


def test_add_then_status(tmp_path, capsys):
    single = make_folder(tmp_path / "data")
    project = tmp_path / "project"
    assert (
        main(["project", "add", str(tmp_path / "data"), str(single), "--project", str(project)])
        == 0
    )
    out = capsys.readouterr().out
    assert "4 image(s) added, 0 already in the project, 1 mask(s) committed, 0 failed" in out
    assert main(["project", "status", "--project", str(project)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines[1:]] == [
        ["cell0.tif", "new"],
        ["cell1.tif", "committed"],
        ["cell2.tif", "new"],
        ["single.tif", "new"],
    ]
    assert lines[2].split()[2] == "2"  # objects of the committed mask
    assert main(["project", "status", "--project", str(project), "--sort", "status"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("cell1.tif")
    assert main(["project", "add", str(tmp_path / "data"), "--project", str(project)]) == 0
    assert "0 image(s) added, 3 already" in capsys.readouterr().out


def test_status_writes_nothing(tmp_path, capsys):
    missing = tmp_path / "nothing"
    assert main(["project", "status", "--project", str(missing)]) == 2
    assert "no napari-cellist project store" in capsys.readouterr().err
    assert not missing.exists()
    make_folder(tmp_path / "data")
    project = tmp_path / "project"
    assert main(["project", "add", str(tmp_path / "data"), "--project", str(project)]) == 0
    store_file = project / "cellist.sqlite"
    before = store_file.read_bytes(), store_file.stat().st_mtime_ns
    assert main(["project", "status", "--project", str(project)]) == 0
    assert (store_file.read_bytes(), store_file.stat().st_mtime_ns) == before


def test_add_reports_failures(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "bad.tif").write_bytes(b"junk")
    assert main(["project", "add", str(tmp_path / "images"), "--project", str(tmp_path / "p")]) == 2
    captured = capsys.readouterr()
    assert "bad.tif" in captured.err and "0 image(s) added" in captured.out
    assert (
        main(["project", "add", str(tmp_path / "missing"), "--project", str(tmp_path / "p")]) == 2
    )
    assert "cellist project: error:" in capsys.readouterr().err


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


def crops_folder(root, dsb) -> None:
    """``root/images`` + ``root/masks``: the four 256x256 crops of the DSB image."""
    image, mask = dsb
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k, (r, c) in enumerate([(0, 0), (0, 256), (256, 0), (256, 256)]):
        tifffile.imwrite(root / "images" / f"c{k}.tif", image[r : r + 256, c : c + 256])
        tifffile.imwrite(root / "masks" / f"c{k}.tif", mask[r : r + 256, c : c + 256])


def test_subprocess_retrain_prints_the_decision(tmp_path, dsb):
    crops_folder(tmp_path / "data", dsb)
    project = str(tmp_path / "project")
    assert _cellist("project", "add", "data", "--project", project, cwd=tmp_path).returncode == 0
    quick = ("--train-param", "max_candidates=4", "--minutes", "1")
    first = _cellist("project", "retrain", "--project", project, *quick, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("threshold v1 accepted: First version: AP50 ")
    # the current parameters only: the same score, a tie, accepted
    tie = _cellist(
        "project", "retrain", "--project", project, "--json", "--train-param",
        "max_candidates=1", cwd=tmp_path,
    )  # fmt: skip
    assert tie.returncode == 0, tie.stderr
    summary = json.loads(tie.stdout)
    assert summary["accepted"] and summary["score"] == summary["current_score"]
    assert summary["held_out"] == ["c1.tif"] and "c1.tif" not in summary["data_used"]
    assert summary["reason"].endswith("replaced v1.")
    bad = _cellist(
        "project", "retrain", "--project", project, "--model", "sam", cwd=tmp_path
    )  # fmt: skip
    assert bad.returncode == 2 and "invalid choice: 'sam'" in bad.stderr
    wrong = _cellist(
        "project", "retrain", "--project", project, "--train-param", "epochs=3", cwd=tmp_path
    )
    assert wrong.returncode == 2 and "Unknown --train-param epochs" in wrong.stderr


def test_status_in_useful_order(tmp_path, capsys):
    from napari_cellist.store import ProjectStore
    from napari_cellist.types import ObjectMeta

    single = make_folder(tmp_path / "data")
    project = tmp_path / "project"
    add = ["project", "add", str(tmp_path / "data"), str(single), "--project", str(project)]
    assert main(add) == 0
    capsys.readouterr()
    labels = np.zeros((24, 30), np.int32)
    labels[2:8, 3:9] = 1
    with ProjectStore(project) as store:
        ids = {r.name: r.id for r in store.images()}
        store.save_prediction(ids["cell2.tif"], labels, {1: ObjectMeta(1, score=0.2)}, "threshold")
        store.save_prediction(ids["cell0.tif"], labels, {1: ObjectMeta(1, score=0.9)}, "threshold")
    assert main(["project", "status", "--project", str(project), "--order", "useful"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-2:] == ["useful", "why"]
    order = [line.split()[:2] for line in lines[1:]]
    assert order == [
        ["cell2.tif", "predicted"],
        ["cell0.tif", "predicted"],
        ["single.tif", "new"],
        ["cell1.tif", "committed"],
    ]
    assert lines[1].split()[8] == "0.90" and "mean doubt 0.80, 100% of 1 objects" in lines[1]
    assert lines[3].split()[8] == "-" and "not predicted yet" in lines[3]

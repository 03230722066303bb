"""``cellist project add`` and ``cellist project status``."""

from __future__ import annotations

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

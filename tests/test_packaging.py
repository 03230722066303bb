"""The wheel carries the npe2 manifest, the sample data and the `cellist` command."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_manifest_and_sample(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("napari_cellist-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        manifest = archive.read("napari_cellist/napari.yaml").decode()
        entry_points = archive.read(
            next(n for n in names if n.endswith("entry_points.txt"))
        ).decode()
    assert manifest == (ROOT / "src" / "napari_cellist" / "napari.yaml").read_text()
    assert "napari_cellist/sample_data/nuclei_dsb2018.tif" in names
    assert "napari-cellist = napari_cellist:napari.yaml" in entry_points
    assert "cellist = napari_cellist.cli:main" in entry_points

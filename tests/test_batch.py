"""Batch prediction on dask: local threads and a dask.distributed LocalCluster give the same
label maps as the single-process run; large images go the tiled way."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr

from napari_cellist.batch import list_inputs, needs_batch, predict_batch
from napari_cellist.models.threshold import ThresholdModel, ThresholdParams
from napari_cellist.pipeline import predict_files
from napari_cellist.progress import drain
from napari_cellist.tiling import predict_tiled


@pytest.fixture
def crops(tmp_path, dsb):
    """Three real 200x200 crops of the DSB nuclei image in a folder."""
    image, _ = dsb
    folder = tmp_path / "images"
    folder.mkdir()
    for i, (r, c) in enumerate([(0, 0), (150, 250), (300, 100)]):
        tifffile.imwrite(folder / f"crop{i}.tif", image[r : r + 200, c : c + 200])
    return folder


@pytest.fixture
def local_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


def read_outputs(folder, names):
    return [tifffile.imread(folder / f"{n}.tif") for n in names]


def test_threads_and_cluster_match_single_process(tmp_path, crops, local_cluster):
    model = ThresholdModel(ThresholdParams(diameter=24))
    single = predict_files(model, [crops], tmp_path / "single")
    threads = drain(predict_batch(model, [crops], tmp_path / "threads", workers=2))
    remote = drain(predict_batch(model, [crops], tmp_path / "remote", scheduler=local_cluster))
    names = ["crop0", "crop1", "crop2"]
    expected = read_outputs(tmp_path / "single", names)
    assert sum(int(m.max()) for m in expected) == single["total_objects"] > 0
    for out, summary in ((tmp_path / "threads", threads), (tmp_path / "remote", remote)):
        assert summary["n_images"] == 3 and not summary["failed"]
        assert summary["total_objects"] == single["total_objects"]
        for got, want in zip(read_outputs(out, names), expected, strict=True):
            np.testing.assert_array_equal(got, want)
    assert remote["scheduler"] == local_cluster and threads["scheduler"] == "threads"


def test_large_image_is_tiled_on_the_cluster(tmp_path, dsb, local_cluster):
    image, _ = dsb
    zarr_path = tmp_path / "big.zarr"
    group = zarr.open_group(str(zarr_path), mode="w", zarr_format=2)
    group.create_array("0", data=image, chunks=(128, 128))
    group.attrs["multiscales"] = [
        {"version": "0.4", "axes": [{"name": "y"}, {"name": "x"}], "datasets": [{"path": "0"}]}
    ]
    assert list_inputs([zarr_path]) == [zarr_path] and needs_batch([zarr_path])
    model = ThresholdModel(ThresholdParams(diameter=24))
    summary = drain(
        predict_batch(model, [zarr_path], tmp_path / "out", scheduler=local_cluster, tile_size=256)
    )
    assert summary["outputs"] == {str(zarr_path): "big.zarr"}
    direct = drain(predict_tiled(model, image, tmp_path / "direct.zarr", tile_size=256))
    assert summary["total_objects"] == direct.count > 50
    written = zarr.open_group(str(tmp_path / "out" / "big.zarr"), mode="r")["labels"][:]
    np.testing.assert_array_equal(written, direct.to_prediction().labels)


def test_failures_are_reported_and_others_go_on(tmp_path, crops):
    (crops / "broken.tif").write_bytes(b"not a tiff")
    summary = drain(predict_batch(ThresholdModel(), [crops], tmp_path / "out", workers=1))
    assert summary["n_images"] == 3
    assert [f["path"] for f in summary["failed"]] == [str(crops / "broken.tif")]
    with pytest.raises(ValueError, match="Cannot reach the dask scheduler"):
        drain(
            predict_batch(ThresholdModel(), [crops], tmp_path / "x", scheduler="tcp://127.0.0.1:9")
        )


def test_cli_predict_ome_zarr_tiles_and_scheduler(tmp_path, dsb, crops, local_cluster, capsys):
    from napari_cellist.cli import main

    image, _ = dsb
    group = zarr.open_group(str(tmp_path / "scan.zarr"), mode="w", zarr_format=2)
    group.create_array("0", data=image, chunks=(128, 128))
    group.attrs["multiscales"] = [
        {"version": "0.4", "axes": [{"name": "y"}, {"name": "x"}], "datasets": [{"path": "0"}]}
    ]
    argv = [
        "predict",
        str(tmp_path / "scan.zarr"),
        "--out",
        str(tmp_path / "o"),
        "--tile-size",
        "256",
    ]
    assert main(argv + ["--diameter", "24"]) == 0
    labels = zarr.open_group(str(tmp_path / "o" / "scan.zarr"), mode="r")["labels"]
    assert labels.shape == image.shape and int(np.asarray(labels).max()) > 50
    capsys.readouterr()
    argv = ["predict", str(crops), "--out", str(tmp_path / "c"), "--scheduler", local_cluster]
    assert main(argv + ["--diameter", "24"]) == 0
    assert '"scheduler": "' + local_cluster in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "c").glob("*.tif")) == [
        "crop0.tif",
        "crop1.tif",
        "crop2.tif",
    ]


def test_which_inputs_go_to_dask(tmp_path, crops):
    big = tmp_path / "big.tif"
    tifffile.imwrite(big, np.zeros((9000, 8000), np.uint8), tile=(1024, 1024), compression="zlib")
    assert not needs_batch([crops])  # small images: the plain path
    assert needs_batch([crops], scheduler="tcp://somewhere:8786")
    assert not needs_batch([big])  # too large for memory: refused unless tiles are asked for
    assert needs_batch([big], tiles=True)

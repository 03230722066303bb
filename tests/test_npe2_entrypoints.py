"""The npe2 manifest validates, and its reader, writer and sample commands resolve and run.

Equivalent of ``npe2 validate napari-cellist`` plus a smoke test of each non-widget command.
"""

from __future__ import annotations

import importlib.util
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
from npe2 import PluginManager, PluginManifest
from npe2.manifest.utils import import_python_name

ROOT = Path(__file__).resolve().parents[1]
PACKAGED = Path(str(files("napari_cellist") / "napari.yaml"))


@pytest.fixture(scope="module")
def manifest() -> PluginManifest:
    return PluginManifest.from_distribution("napari-cellist")


def test_manifest_file_validates_and_is_the_only_copy():
    source = ROOT / "src" / "napari_cellist" / "napari.yaml"
    assert PluginManifest.from_file(PACKAGED).name == "napari-cellist"
    assert source.is_file() and not source.is_symlink()
    assert PACKAGED.read_text() == source.read_text()
    assert not (ROOT / "napari.yaml").exists()  # one copy, in the package


def test_distribution_manifest(manifest):
    assert manifest.name == "napari-cellist"
    assert {s.key for s in manifest.contributions.sample_data} == {"nuclei", "nuclei_with_truth"}


def test_commands_resolve(manifest):
    widgets_spec = importlib.util.find_spec("napari_cellist._widgets")
    widgets_exist = widgets_spec is not None and widgets_spec.origin not in (None, "namespace")
    for command in manifest.contributions.commands:
        if command.python_name.startswith("napari_cellist._widgets") and not widgets_exist:
            continue  # the widgets are someone else's and not written yet
        assert callable(import_python_name(command.python_name)), command.python_name


@pytest.fixture
def plugin_manager(manifest) -> PluginManager:
    pm = PluginManager()  # a private one: the global instance belongs to napari
    pm.register(manifest)
    pm.activate(manifest.name)  # registers the commands' python_names
    return pm


def test_reader_and_writer_through_npe2(plugin_manager, tmp_path):
    from napari_cellist._sample_data import sample_image_path

    path = str(sample_image_path())
    [reader] = plugin_manager.iter_compatible_readers([path])
    read = plugin_manager.commands.execute(reader.command, args=(path,))
    layers = read(path)
    assert [(k["name"], t) for _, k, t in layers] == [("nuclei_dsb2018", "image")]
    labels = (np.asarray(layers[0][0]) > 60).astype(np.int32)
    [writer] = plugin_manager.iter_compatible_writers(["labels"])
    assert ".tif" in writer.filename_extensions
    target = str(tmp_path / "l.tif")
    written = plugin_manager.commands.execute(
        writer.command, args=(target, labels, {"scale": (1.0, 1.0)})
    )
    assert written == [target] and Path(target).stat().st_size > 0


def test_sample_commands_run(manifest, plugin_manager):
    for sample in manifest.contributions.sample_data:
        layers = plugin_manager.commands.execute(sample.command)
        assert layers and all(t in ("image", "labels") for _, _, t in layers), sample.key

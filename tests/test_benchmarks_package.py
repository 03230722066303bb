"""The benchmarks are a package: every module imports (no sys.path tricks, no absolute paths)
and the one data-path helper honours CELLIST_DATA."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import benchmarks
from benchmarks import _data

MODULES = sorted(m.name for m in pkgutil.walk_packages(benchmarks.__path__, "benchmarks."))


def test_the_package_holds_the_benchmarks_and_the_diagnostics():
    assert {
        "benchmarks.bench_air",
        "benchmarks.bench_threshold",
        "benchmarks.diagnostics.missed_objects",
    } <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_every_benchmark_module_imports(name):
    module = importlib.import_module(name)
    source = Path(module.__file__).read_text()
    assert "sys.path" not in source and "/work/" not in source


def test_data_root_is_cellist_data_when_set(tmp_path, monkeypatch):
    (tmp_path / "nuclei" / "images").mkdir(parents=True)
    monkeypatch.setenv("CELLIST_DATA", str(tmp_path))
    assert _data.data_root() == tmp_path
    assert _data.data_folder("nuclei") == tmp_path / "nuclei"
    with pytest.raises(ValueError, match="no data set 'other'.*known: nuclei"):
        _data.data_folder("other")


def test_data_root_defaults_to_shared_data_beside_the_repository(monkeypatch):
    monkeypatch.delenv("CELLIST_DATA", raising=False)
    assert _data.DEFAULT_DATA == Path(benchmarks.__file__).resolve().parents[2] / "shared" / "data"
    monkeypatch.setenv("CELLIST_DATA", "/nonexistent/cellist-data")
    with pytest.raises(ValueError, match="set CELLIST_DATA"):
        _data.data_root()


def test_results_are_written_under_benchmarks_results():
    assert (
        _data.result_path("x.json")
        == Path(benchmarks.__file__).resolve().parent / "results" / "x.json"
    )

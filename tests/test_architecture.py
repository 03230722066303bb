"""The model/view split: nothing outside napari_cellist._widgets imports Qt, magicgui or napari.qt."""

import ast
import subprocess
import sys
from pathlib import Path

import napari_cellist

PACKAGE = Path(napari_cellist.__file__).parent
FORBIDDEN = ("qtpy", "magicgui", "napari.qt", "napari._qt", "PyQt5", "PyQt6", "PySide2", "PySide6")


def _core_modules() -> list[str]:
    names = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        if "_widgets" in relative.parts:
            continue
        names.append(".".join(relative.parts).removesuffix(".__init__"))
    return sorted(names)


def test_no_qt_import_statements_outside_widgets():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "_widgets" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith(FORBIDDEN)]
    assert offenders == []


def test_importing_the_core_loads_no_qt():
    modules = [m for m in _core_modules() if not m.endswith(("_reader", "_writer", "_sample_data"))]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError as err:\n"
        "        print('skip', name, err)\n"
        f"bad = sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r}))\n"
        "print('QT', bad)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "QT []" in result.stdout, result.stdout
    assert len(modules) > 20


def test_heavy_libraries_are_imported_lazily():
    code = "import sys, napari_cellist.models, napari_cellist.cli; print(sorted(m for m in ('torch', 'pyro', 'cellpose', 'segment_anything') if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_every_model_package_keeps_its_registered_class_in_model_py():
    from napari_cellist.models import REGISTRY

    for name, entry in REGISTRY.items():
        module, _, cls = entry.target.partition(":")
        assert module.endswith(".model") and cls.endswith("Model"), (name, entry.target)
        assert (PACKAGE / "models" / module.replace(".", "/")).with_suffix(".py").is_file()


def test_tests_share_helpers_through_fixtures_not_conftest_imports():
    tests = Path(__file__).parent
    offenders = []
    for path in tests.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "conftest":
                offenders.append(str(path.relative_to(tests)))
            if isinstance(node, ast.Import) and any(a.name == "conftest" for a in node.names):
                offenders.append(str(path.relative_to(tests)))
    assert offenders == []

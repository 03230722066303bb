"""The bad-input corpus of issue 16: what a careless or hostile user gives ``cellist`` and napari.

Every CLI case builds its inputs in a fresh folder, runs ``cellist`` in-process and asserts:

- a non-zero exit code (1: done in part, 2: nothing done);
- no traceback, and exactly one line on stderr, ``cellist <command>: error: ...``, that says
  what is wrong (a regular expression per case);
- nothing created or changed outside the ``--out`` folder (the inputs' folder included).

Every reader case asserts that napari's ``get_reader`` declines the path (returns None without
raising), so that napari can offer it to another plugin.

Set ``CELLIST_CORPUS_REPORT=<file>`` to append one JSON line per case (its outcome, before the
assertions), which ``tests/corpus_report.py`` sums up; that is how the counts before and after
the fixes were measured.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import sqlite3
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_cellist.cli import main

GOOD = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (64, 1))
NOISE = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)  # PNGs of some size


# -- inputs ------------------------------------------------------------------------------------
def _tiff(path: Path, data: np.ndarray | None = None, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, GOOD if data is None else data, **kwargs)
    return path


def _bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _png_bytes() -> bytes:
    import io

    import imageio.v3 as iio

    buffer = io.BytesIO()
    iio.imwrite(buffer, NOISE, extension=".png")
    return buffer.getvalue()


def _jpeg_bytes() -> bytes:
    import io

    import imageio.v3 as iio

    buffer = io.BytesIO()
    iio.imwrite(buffer, NOISE, extension=".jpg")
    return buffer.getvalue()


def _png_bomb(path: Path, side: int = 100_000) -> Path:
    """A 100-byte PNG whose header declares ``side`` x ``side`` grey pixels."""
    import struct

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    return _bytes(path, b"\x89PNG\r\n\x1a\n" + body)


def _truncated_tiff(path: Path, compression: str | None = None) -> Path:
    _tiff(path, np.arange(256 * 256, dtype=np.uint16).reshape(256, 256), compression=compression)
    path.write_bytes(path.read_bytes()[:5000])
    return path


def _huge_tiff(path: Path, side: int = 40_000) -> Path:
    """A ~1.7 MB zlib TIFF declaring ``side`` x ``side`` uint8 pixels (tiles written once)."""
    tile = zlib.compress(np.zeros((1024, 1024), np.uint8).tobytes())
    n = -(-side // 1024)
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(
        path,
        (tile for _ in range(n * n)),
        shape=(side, side),
        dtype=np.uint8,
        tile=(1024, 1024),
        compression="zlib",
    )
    return path


def _folder(root: Path, images: dict[str, np.ndarray | bytes], masks: dict | None = None) -> Path:
    for sub, files in (("images", images), ("masks", masks)):
        if files is None:
            continue
        (root / sub).mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            if isinstance(data, bytes):
                _bytes(root / sub / name, data)
            else:
                _tiff(root / sub / name, data)
    return root


def _mask() -> np.ndarray:
    mask = np.zeros((64, 64), np.uint16)
    mask[10:20, 10:20], mask[40:52, 30:44] = 1, 2
    return mask


class _Evil:
    """Pickles to a call of os.system that would create PWNED next to it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def _malicious_checkpoint(path: Path, torch_zip: bool = True) -> Path:
    marker = path.parent / "PWNED"
    path.parent.mkdir(parents=True, exist_ok=True)
    if torch_zip:
        import torch

        torch.save({"state_dict": _Evil(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(_Evil(marker)))
    return path


def _truncated_checkpoint(path: Path) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"weights": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:600])
    return path


def _store_with(root: Path, items: list[tuple[str, np.ndarray, np.ndarray]]) -> Path:
    from napari_cellist.store import ProjectStore

    with ProjectStore(root) as store:
        for name, image, labels in items:
            record = store.add_image(image, name=name, store_pixels=True)
            store.commit_annotations(record.id, labels)
    return root


def _image_and_labels(seed: int, shape=(64, 64)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, shape, dtype=np.uint8)
    labels = np.zeros(shape, np.int32)
    labels[..., 5:15, 5:15] = 1
    labels[..., 30:40, 20:35] = 2
    return image, labels


# -- the CLI corpus ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """A bad input: ``build(root, out)`` makes the inputs and returns the arguments."""

    id: str
    build: Callable[[Path, Path], list[str]]
    expect: str
    codes: tuple[int, ...] = (1, 2)
    n_lines: int = 1  # a warning may precede the error when it names something else


def _predict(*inputs: str | Path, extra: tuple[str, ...] = ()) -> Callable[[Path, Path], list[str]]:
    """``cellist predict <inputs relative to root> --out OUT``; ``str`` inputs are made by name."""

    def build(root: Path, out: Path) -> list[str]:
        return ["predict", *(str(root / i) for i in inputs), *extra, "--out", str(out)]

    return build


def _with(make: Callable[[Path], object], build: Callable[[Path, Path], list[str]]):
    def wrapped(root: Path, out: Path) -> list[str]:
        make(root)
        return build(root, out)

    return wrapped


def _ckpt_case(model: str, make: Callable[[Path], Path], expect: str, cid: str) -> Case:
    def build(root: Path, out: Path) -> list[str]:
        _tiff(root / "img.tif")
        ckpt = make(root)
        return [
            "predict",
            str(root / "img.tif"),
            "--model",
            model,
            "--checkpoint",
            str(ckpt),
            "--out",
            str(out),
        ]

    return Case(cid, build, expect)


def _loop(root: Path) -> None:
    (root / "loop").symlink_to(root / "loop")


PREDICT_CASES = [
    Case("predict-missing-file", _predict("missing.tif"), r"missing\.tif' does not exist"),
    Case("predict-missing-folder", _predict("nowhere"), r"nowhere' does not exist"),
    Case("predict-symlink-loop", _with(_loop, _predict("loop")), r"loops back on itself"),
    Case(
        "predict-broken-symlink",
        _with(lambda r: (r / "gone.tif").symlink_to(r / "nothing.tif"), _predict("gone.tif")),
        r"broken symbolic link",
    ),
    Case(
        "predict-empty-folder",
        _with(lambda r: (r / "empty").mkdir(), _predict("empty")),
        r"No images found",
    ),
    Case(
        "predict-folder-of-text",
        _with(lambda r: _bytes(r / "txt" / "a.txt", b"x"), _predict("txt")),
        r"No images found",
    ),
    Case(
        "predict-hidden-files-only",
        _with(lambda r: _tiff(r / "hid" / ".a.tif"), _predict("hid")),
        r"No images found",
    ),
    Case(
        "predict-unsupported-extension",
        _with(lambda r: _bytes(r / "a.bmp", b"BM.."), _predict("a.bmp")),
        r"unsupported file type '\.bmp'",
    ),
    Case(
        "predict-no-extension-file",
        _with(lambda r: _bytes(r / "README", b"text"), _predict("README")),
        r"unsupported file type ''",
    ),
    Case(
        "predict-empty-tif",
        _with(lambda r: _bytes(r / "e.tif", b""), _predict("e.tif")),
        r"e\.tif' is empty",
    ),
    Case(
        "predict-text-as-tif",
        _with(lambda r: _bytes(r / "t.tif", b"not an image\n" * 20), _predict("t.tif")),
        r"t\.tif'.*corrupt",
    ),
    Case(
        "predict-png-as-tif",
        _with(lambda r: _bytes(r / "p.tif", _png_bytes()), _predict("p.tif")),
        r"p\.tif'.*not a TIFF",
    ),
    Case(
        "predict-jpeg-as-tif",
        _with(lambda r: _bytes(r / "j.tif", _jpeg_bytes()), _predict("j.tif")),
        r"j\.tif'.*not a TIFF",
    ),
    Case(
        "predict-truncated-tif",
        _with(lambda r: _truncated_tiff(r / "cut.tif"), _predict("cut.tif")),
        r"cut\.tif' is truncated",
    ),
    Case(
        "predict-truncated-zlib-tif",
        _with(lambda r: _truncated_tiff(r / "cutz.tif", "zlib"), _predict("cutz.tif")),
        r"cutz\.tif' is truncated",
    ),
    Case(
        "predict-tiff-header-only",
        _with(lambda r: _bytes(r / "h.tif", b"II*\x00\x08\x00\x00\x00"), _predict("h.tif")),
        r"h\.tif'",
    ),
    Case(
        "predict-empty-png",
        _with(lambda r: _bytes(r / "e.png", b""), _predict("e.png")),
        r"e\.png' is empty",
    ),
    Case(
        "predict-text-as-png",
        _with(lambda r: _bytes(r / "t.png", b"hello"), _predict("t.png")),
        r"t\.png'.*corrupt",
    ),
    Case(
        "predict-truncated-png",
        _with(
            lambda r: _bytes(r / "c.png", _png_bytes()[: len(_png_bytes()) // 2]), _predict("c.png")
        ),
        r"c\.png'",
    ),
    Case(
        "predict-truncated-jpeg",
        _with(lambda r: _bytes(r / "c.jpg", _jpeg_bytes()[:100]), _predict("c.jpg")),
        r"c\.jpg'",
    ),
    Case(
        "predict-huge-declared-tiff",
        _with(lambda r: _huge_tiff(r / "huge.tif"), _predict("huge.tif")),
        r"huge\.tif' declares 40000 x 40000 uint8.*memory",
    ),
    Case(
        "predict-absurd-declared-tiff",
        _with(lambda r: _huge_tiff(r / "absurd.tif", 200_000), _predict("absurd.tif")),
        r"absurd\.tif' declares 200000 x 200000.*memory",
    ),
    Case(
        "predict-png-bomb",
        _with(lambda r: _png_bomb(r / "bomb.png"), _predict("bomb.png")),
        r"bomb\.png' declares more pixels",
    ),
    Case(
        "predict-all-nan",
        _with(
            lambda r: _tiff(r / "nan.tif", np.full((32, 32), np.nan, np.float32)),
            _predict("nan.tif"),
        ),
        r"no finite values",
    ),
    Case(
        "predict-complex-dtype",
        _with(lambda r: _tiff(r / "cx.tif", np.ones((32, 32), np.complex64)), _predict("cx.tif")),
        r"complex64",
    ),
    Case(
        "predict-5d-image",
        _with(
            lambda r: _tiff(r / "5d.tif", np.zeros((2, 3, 4, 16, 16), np.uint8), imagej=True),
            _predict("5d.tif"),
        ),
        r"2D \(Y, X\) or 3D|choose the channel",
    ),
    Case(
        "predict-channels-without-channel",
        _with(
            lambda r: _tiff(
                r / "c.tif", np.zeros((3, 32, 32), np.uint8), imagej=True, metadata={"axes": "CYX"}
            ),
            _predict("c.tif"),
        ),
        r"choose the channel",
    ),
    Case(
        "predict-channel-out-of-range",
        _with(
            lambda r: _tiff(
                r / "c.tif", np.zeros((3, 32, 32), np.uint8), imagej=True, metadata={"axes": "CYX"}
            ),
            _predict("c.tif", extra=("--channel", "5")),
        ),
        r"Channel 5 does not exist",
    ),
    Case(
        "predict-out-is-a-file",
        lambda r, o: ["predict", str(_tiff(r / "g.tif")), "--out", str(_bytes(o, b"a file"))],
        r"exists|[Nn]ot a directory",
    ),
    Case(
        "predict-out-is-the-input-folder",
        _with(
            lambda r: _tiff(r / "imgs" / "g.tif"),
            lambda r, o: ["predict", str(r / "imgs"), "--out", str(r / "imgs")],
        ),
        r"would overwrite the input image '.*g\.tif'",
    ),
    Case(
        "predict-checkpoint-missing",
        _with(
            lambda r: _tiff(r / "g.tif"),
            _predict("g.tif", extra=("--checkpoint", "/nonexistent/x.json")),
        ),
        r"x\.json' does not exist",
    ),
    Case(
        "predict-threshold-checkpoint-not-json",
        _with(
            lambda r: (_tiff(r / "g.tif"), _bytes(r / "t.json", b"\x00\x01garbage")),
            lambda r, o: [
                "predict",
                str(r / "g.tif"),
                "--checkpoint",
                str(r / "t.json"),
                "--out",
                str(o),
            ],
        ),
        r"t\.json",
    ),
    Case(
        "predict-threshold-checkpoint-wrong-json",
        _with(
            lambda r: (_tiff(r / "g.tif"), _bytes(r / "t.json", b"[1, 2, 3]")),
            lambda r, o: [
                "predict",
                str(r / "g.tif"),
                "--checkpoint",
                str(r / "t.json"),
                "--out",
                str(o),
            ],
        ),
        r"t\.json",
    ),
    Case(
        "predict-param-unknown",
        _with(lambda r: _tiff(r / "g.tif"), _predict("g.tif", extra=("--param", "colour=red"))),
        r"Unknown --param colour",
    ),
    Case(
        "predict-param-no-equals",
        _with(lambda r: _tiff(r / "g.tif"), _predict("g.tif", extra=("--param", "diameter"))),
        r"key=value",
    ),
    Case(
        "predict-param-bad-bool",
        _with(lambda r: _tiff(r / "g.tif"), _predict("g.tif", extra=("--param", "invert=maybe"))),
        r"'invert' is true or false",
    ),
    Case(
        "predict-param-bad-choice",
        _with(lambda r: _tiff(r / "g.tif"), _predict("g.tif", extra=("--param", "method=magic"))),
        r"magic",
    ),
    Case(
        "predict-prompts-for-threshold",
        _with(
            lambda r: (_tiff(r / "g.tif"), _tiff(r / "pr" / "g.tif", _mask())),
            _predict("g.tif", extra=()),
        ),
        r"prompts",
    ),
    Case(
        "predict-prompts-missing-file",
        _with(lambda r: (_tiff(r / "g.tif"), (r / "pr").mkdir()), _predict("g.tif")),
        r"pr.*g\.tif",
    ),
]


def _threshold_prompts(case: Case) -> Case:
    def build(root: Path, out: Path) -> list[str]:
        args = case.build(root, out)
        return [*args[:-2], "--prompts-from", str(root / "pr"), *args[-2:]]

    return Case(case.id, build, case.expect)


PREDICT_CASES[-2] = _threshold_prompts(PREDICT_CASES[-2])
PREDICT_CASES[-1] = Case(
    "predict-prompts-missing-folder",
    _with(
        lambda r: _tiff(r / "g.tif"),
        lambda r, o: [
            "predict",
            str(r / "g.tif"),
            "--prompts-from",
            str(r / "nope"),
            "--out",
            str(o),
        ],
    ),
    r"--prompts-from.*nope' does not exist",
)

CHECKPOINT_CASES = [
    _ckpt_case(model, make, expect, f"checkpoint-{model}-{kind}")
    for model in ("sam", "cellpose", "air")
    for kind, make, expect in (
        (
            "malicious-torch",
            lambda r: _malicious_checkpoint(r / "evil.pth"),
            r"evil\.pth'.*posix\.system|evil\.pth'.*not loaded",
        ),
        (
            "malicious-pickle",
            lambda r: _malicious_checkpoint(r / "evil.pkl", torch_zip=False),
            r"evil\.pkl'",
        ),
        ("random-bytes", lambda r: _bytes(r / "junk.pth", bytes(range(256)) * 16), r"junk\.pth'"),
        (
            "truncated",
            lambda r: _truncated_checkpoint(r / "cut.pth"),
            r"cut\.pth'.*(incomplete|corrupt)",
        ),
        ("empty", lambda r: _bytes(r / "empty.pth", b""), r"empty\.pth'"),
    )
]


def _train(data: str, model: str = "threshold", extra: tuple[str, ...] = ()) -> Callable:
    def build(root: Path, out: Path) -> list[str]:
        return [
            "train",
            "--model",
            model,
            "--data",
            str(root / data),
            *extra,
            "--out",
            str(out / "m.json"),
        ]

    return build


def _images_only(root: Path) -> None:
    _folder(root / "d", {"a.tif": GOOD})


TRAIN_CASES = [
    Case("train-missing-folder", _train("nowhere"), r"nowhere' does not exist"),
    Case("train-symlink-loop", _with(_loop, _train("loop")), r"loops back on itself"),
    Case(
        "train-folder-without-images",
        _with(lambda r: (r / "d").mkdir(), _train("d")),
        r"no 'images/' sub-folder|No images found",
    ),
    Case(
        "train-images-without-masks",
        _with(_images_only, _train("d")),
        r"'.*d' has images/ but no masks/ folder",
    ),
    Case(
        "train-masks-named-otherwise",
        _with(lambda r: _folder(r / "d", {"a.tif": GOOD}, {"b.tif": _mask()}), _train("d")),
        r"no file in '.*masks' has the name of an image",
        n_lines=2,
    ),
    Case(
        "train-mask-wrong-shape",
        _with(
            lambda r: _folder(r / "d", {"a.tif": GOOD}, {"a.tif": np.zeros((8, 8), np.uint16)}),
            _train("d"),
        ),
        r"a\.tif' has shape \(8, 8\)",
    ),
    Case(
        "train-mask-is-text",
        _with(lambda r: _folder(r / "d", {"a.tif": GOOD}, {"a.tif": b"not a mask"}), _train("d")),
        r"masks/a\.tif'.*corrupt",
    ),
    Case(
        "train-mask-fractions",
        _with(
            lambda r: _folder(
                r / "d", {"a.tif": GOOD}, {"a.tif": np.full((64, 64), 0.5, np.float32)}
            ),
            _train("d"),
        ),
        r"whole numbers",
    ),
    Case(
        "train-mask-negative",
        _with(
            lambda r: _folder(r / "d", {"a.tif": GOOD}, {"a.tif": np.full((64, 64), -1, np.int16)}),
            _train("d"),
        ),
        r">= 0",
    ),
    Case(
        "train-mask-rgb",
        _with(
            lambda r: _folder(r / "d", {"a.tif": GOOD}, {"a.tif": np.zeros((64, 64, 3), np.uint8)}),
            _train("d"),
        ),
        r"colour|shape",
    ),
    Case(
        "train-image-truncated",
        _with(
            lambda r: (_folder(r / "d", {}, {}), _truncated_tiff(r / "d" / "images" / "a.tif")),
            _train("d"),
        ),
        r"a\.tif' is truncated",
    ),
    Case(
        "train-points-garbage",
        _with(
            lambda r: (
                _folder(r / "d", {"a.tif": GOOD}, {"a.tif": _mask()}),
                _bytes(r / "d" / "points" / "a.csv", b"foo,bar\n1,2\n"),
            ),
            _train("d"),
        ),
        r"names no y,x columns",
    ),
    Case(
        "train-untrainable-model",
        _with(_images_only, _train("d", model="sam")),
        r"cannot be trained",
    ),
    Case(
        "train-unknown-train-param",
        _with(_images_only, _train("d", extra=("--train-param", "speed=9"))),
        r"speed",
    ),
    Case(
        "train-init-malicious",
        _with(
            lambda r: (
                _folder(r / "d", {"a.tif": GOOD}, {"a.tif": _mask()}),
                _malicious_checkpoint(r / "evil.pth"),
            ),
            _train("d", model="air", extra=("--init", "evil.pth")),
        ),
        r"evil\.pth'.*posix\.system",
    ),
    Case(
        "train-init-missing",
        _with(_images_only, _train("d", model="air", extra=("--init", "/nonexistent/air.ckpt"))),
        r"air\.ckpt' does not exist",
    ),
]


def _eval(gt: str, pred: str) -> Callable:
    def build(root: Path, out: Path) -> list[str]:
        return ["eval", "--gt", str(root / gt), "--pred", str(root / pred)]

    return build


def _gt_pred(root: Path, pred: dict | None = None) -> None:
    _tiff(root / "gt" / "a.tif", _mask())
    for name, data in (pred if pred is not None else {"a.tif": _mask()}).items():
        (_bytes if isinstance(data, bytes) else _tiff)(root / "pred" / name, data)


EVAL_CASES = [
    Case(
        "eval-gt-missing",
        _with(_gt_pred, _eval("nowhere", "pred")),
        r"ground-truth.*nowhere' does not exist",
    ),
    Case(
        "eval-pred-missing",
        _with(_gt_pred, _eval("gt", "nowhere")),
        r"prediction.*nowhere' does not exist",
    ),
    Case("eval-gt-is-a-file", _with(_gt_pred, _eval("gt/a.tif", "pred")), r"is a file"),
    Case(
        "eval-gt-loop",
        _with(lambda r: (_gt_pred(r), _loop(r)), _eval("loop", "pred")),
        r"loops back on itself",
    ),
    Case(
        "eval-gt-empty",
        _with(lambda r: (_gt_pred(r), (r / "empty").mkdir()), _eval("empty", "pred")),
        r"No ground-truth",
    ),
    Case(
        "eval-pred-file-missing",
        _with(lambda r: _gt_pred(r, {"b.tif": _mask()}), _eval("gt", "pred")),
        r"No prediction .*a\.tif",
    ),
    Case(
        "eval-pred-corrupt",
        _with(lambda r: _gt_pred(r, {"a.tif": b"garbage"}), _eval("gt", "pred")),
        r"pred/a\.tif'.*corrupt",
    ),
    Case(
        "eval-pred-shape-mismatch",
        _with(lambda r: _gt_pred(r, {"a.tif": np.zeros((8, 8), np.uint16)}), _eval("gt", "pred")),
        r"shape",
    ),
]


def _export(project: str, *formats: str) -> Callable:
    def build(root: Path, out: Path) -> list[str]:
        fmt = ["--format", *formats] if formats else []
        return ["export", "--project", str(root / project), *fmt, "--out", str(out)]

    return build


EXPORT_CASES = [
    Case("export-missing-folder", _export("nowhere"), r"nowhere' does not exist"),
    Case(
        "export-folder-without-store",
        _with(lambda r: (r / "proj").mkdir(), _export("proj")),
        r"No project store in",
    ),
    Case(
        "export-text-file-as-store",
        _with(lambda r: _bytes(r / "p.sqlite", b"just text" * 100), _export("p.sqlite")),
        r"p\.sqlite",
    ),
    Case(
        "export-empty-store",
        _with(lambda r: _store_with(r / "proj", []), _export("proj")),
        r"Nothing committed",
    ),
    Case(
        "export-bad-url",
        lambda r, o: ["export", "--project", "nosuchdb://x/y", "--out", str(o)],
        r"nosuchdb",
    ),
    Case(
        "export-newer-schema", _with(lambda r: _newer_schema(r / "proj"), _export("proj")), r"newer"
    ),
    Case(
        "export-mixed-2d-3d",
        _with(
            lambda r: _store_with(
                r / "proj",
                [("flat", *_image_and_labels(1)), ("stack", *_image_and_labels(2, (3, 64, 64)))],
            ),
            _export("proj", "tiff", "coco", "geojson"),
        ),
        r"[Ss]kipped 1 3D image.*coco, geojson.*stack",
    ),
]


def _newer_schema(root: Path) -> None:
    _store_with(root, [])
    with sqlite3.connect(root / "cellist.sqlite") as connection:
        connection.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    connection.close()


CLI_CASES = PREDICT_CASES + CHECKPOINT_CASES + TRAIN_CASES + EVAL_CASES + EXPORT_CASES


# -- running and checking ----------------------------------------------------------------------
def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """``{relative path: (size, mtime)}`` of files, ``(0, 0)`` for folders (existence only).

    SQLite's ``-wal`` / ``-shm`` files are left out: any reader of a WAL database may create
    them empty beside it (the database itself must not change).
    """
    found = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in files + dirs:
            path = Path(folder) / name
            if name.endswith(("-wal", "-shm")):
                continue
            try:
                stat = path.lstat()
            except OSError:
                continue
            key = str(path.relative_to(root))
            found[key] = (0, 0) if name in dirs else (stat.st_size, stat.st_mtime_ns)
    return found


def _changed_outside(before: dict, after: dict, out_rel: str) -> list[str]:
    changed = [p for p, v in after.items() if before.get(p) != v]
    inside = [p for p in changed if p == out_rel or p.startswith(out_rel + os.sep)]
    ancestors = [p for p in changed if out_rel.startswith(p + os.sep)]  # making --out itself
    return sorted(set(changed) - set(inside) - set(ancestors))


def _run(argv: list[str], capsys, caplog) -> tuple[int | None, str, str]:
    """Exit code (None: an exception escaped), stdout, stderr (+ log lines napari_cellist wrote
    through the root logger, as ``logging.basicConfig`` would have shown them)."""
    caplog.set_level(logging.WARNING)
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 2
    except BaseException as err:  # noqa: BLE001 - a traceback the user would have seen
        import traceback

        code = None
        print("".join(traceback.format_exception(err)), file=__import__("sys").stderr)
    captured = capsys.readouterr()
    logged = [
        f"{r.levelname} {r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.name.startswith("napari_cellist") and r.levelno >= logging.WARNING
    ]
    err = captured.err + "".join(line + "\n" for line in logged)
    return code, captured.out, err


def _report(record: dict) -> None:
    target = os.environ.get("CELLIST_CORPUS_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")


@pytest.fixture
def small_memory(monkeypatch):
    """4 GiB available, whatever the machine has: the memory cases do not depend on the host.

    (Without ``io.probe``, i.e. run against the code before issue 16, nothing is patched.)
    """
    try:
        from napari_cellist.io import probe
    except ImportError:
        return
    monkeypatch.setattr(probe, "available_memory", lambda: 4 * 2**30)


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_cli_bad_input(case: Case, tmp_path, capsys, caplog, monkeypatch, small_memory):
    root = tmp_path / "in"
    root.mkdir()
    out = tmp_path / "deep" / "out"
    argv = case.build(root, out)
    monkeypatch.chdir(root)
    before = _snapshot(tmp_path)
    code, stdout, stderr = _run(argv, capsys, caplog)
    outside = _changed_outside(before, _snapshot(tmp_path), str(out.relative_to(tmp_path)))
    lines = [line for line in stderr.splitlines() if line.strip()]
    clear = len(lines) == case.n_lines and bool(re.search(case.expect, lines[-1]))
    _report(
        {
            "kind": "cli",
            "id": case.id,
            "code": code,
            "traceback": "Traceback" in stderr + stdout or code is None,
            "lines": len(lines),
            "clear": clear,
            "outside": outside,
            "pwned": (root / "PWNED").exists(),
        }
    )
    assert "Traceback" not in stderr + stdout, stderr
    assert code in case.codes, (code, stderr)
    assert not (root / "PWNED").exists(), "a pickle ran code"
    assert outside == [], f"written outside --out: {outside}"
    assert len(lines) == case.n_lines, f"expected {case.n_lines} line(s) on stderr, got:\n{stderr}"
    assert all(line.startswith(f"cellist {argv[0]}: ") for line in lines), lines
    assert re.search(case.expect, lines[-1]), lines[-1]


# -- the reader corpus -------------------------------------------------------------------------
def _reader_folder_with_mask(mask: np.ndarray | bytes) -> Callable[[Path], Path]:
    def build(root: Path) -> Path:
        return _folder(root / "set", {"a.tif": GOOD}, {"a.tif": mask})

    return build


READER_CASES: list[tuple[str, Callable[[Path], object]]] = [
    ("missing-file", lambda r: r / "missing.tif"),
    ("missing-folder", lambda r: r / "nowhere"),
    ("symlink-loop", lambda r: (_loop(r), r / "loop")[1]),
    ("empty-tif", lambda r: _bytes(r / "e.tif", b"")),
    ("text-as-tif", lambda r: _bytes(r / "t.tif", b"hello\n" * 50)),
    ("png-as-tif", lambda r: _bytes(r / "p.tif", _png_bytes())),
    ("jpeg-as-tif", lambda r: _bytes(r / "j.tif", _jpeg_bytes())),
    ("truncated-tif", lambda r: _truncated_tiff(r / "cut.tif")),
    ("truncated-zlib-tif", lambda r: _truncated_tiff(r / "cutz.tif", "zlib")),
    ("tiff-header-only", lambda r: _bytes(r / "h.tif", b"II*\x00\x08\x00\x00\x00")),
    ("empty-png", lambda r: _bytes(r / "e.png", b"")),
    ("text-as-png", lambda r: _bytes(r / "t.png", b"hello")),
    ("truncated-png", lambda r: _bytes(r / "c.png", _png_bytes()[: len(_png_bytes()) // 2])),
    ("huge-declared-tiff", lambda r: _huge_tiff(r / "huge.tif", 80_000)),  # 6.4 GB > 4 GiB
    ("absurd-declared-tiff", lambda r: _huge_tiff(r / "absurd.tif", 200_000)),
    ("png-bomb", lambda r: _png_bomb(r / "bomb.png")),
    ("folder-named-tif", lambda r: (r / "dir.tif").mkdir() or r / "dir.tif"),
    ("empty-folder", lambda r: (r / "empty").mkdir() or r / "empty"),
    ("folder-of-text", lambda r: _bytes(r / "txt" / "a.txt", b"x").parent),
    (
        "folder-with-one-bad-image",
        lambda r: (_tiff(r / "mix" / "a.tif"), _bytes(r / "mix" / "b.tif", b"bad"))[0].parent,
    ),
    ("annotated-mask-is-text", _reader_folder_with_mask(b"not a mask")),
    (
        "annotated-mask-truncated",
        lambda r: (
            _folder(r / "set", {"a.tif": GOOD}, {}),
            _truncated_tiff(r / "set" / "masks" / "a.tif"),
        )[0],
    ),
    ("annotated-mask-wrong-shape", _reader_folder_with_mask(np.zeros((8, 8), np.uint16))),
    ("annotated-mask-complex", _reader_folder_with_mask(np.zeros((64, 64), np.complex64))),
    (
        "annotated-image-truncated",
        lambda r: (
            _folder(r / "set", {}, {"a.tif": _mask()}),
            _truncated_tiff(r / "set" / "images" / "a.tif"),
        )[0],
    ),
    (
        "annotated-points-garbage",
        lambda r: (
            _folder(r / "set", {"a.tif": GOOD}, {"a.tif": _mask()}),
            _bytes(r / "set" / "points" / "a.csv", b"foo,bar\n1,2\n"),
        )[0],
    ),
    ("list-with-one-bad-file", lambda r: [_tiff(r / "g.tif"), _bytes(r / "b.tif", b"bad")]),
]


@pytest.mark.parametrize("make", [m for _, m in READER_CASES], ids=[i for i, _ in READER_CASES])
def test_reader_declines_what_it_cannot_read(make, tmp_path, request, small_memory):
    from napari_cellist._reader import napari_get_reader

    target = make(tmp_path)
    path = [str(p) for p in target] if isinstance(target, list) else str(target)
    try:
        reader = napari_get_reader(path)
        raised = None
    except Exception as err:  # noqa: BLE001 - counted, then failed below
        reader, raised = None, repr(err)
    _report(
        {
            "kind": "reader",
            "id": request.node.callspec.id,
            "accepted": reader is not None,
            "raised": raised,
        }
    )
    assert raised is None
    assert reader is None


# -- names: confined to --out, never overwriting each other -----------------------------------
HOSTILE_NAMES = [
    "../../escaped",
    "../x",
    "/abs/escaped",
    "a/b/c",
    "a\\b",
    "nul\x00byte",
    "CON",
    "aux.txt",
    "",
    "..",
    ".",
    " . ",
    "com1",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=[repr(n) for n in HOSTILE_NAMES])
def test_export_names_stay_inside_out(name, tmp_path, capsys, caplog):
    """An image named ``../../x`` or ``/abs/x`` is exported inside --out, under a safe name."""
    stored = str(tmp_path / "abs" / "escaped") if name == "/abs/escaped" else name
    root = tmp_path / "in"
    _store_with(root / "proj", [(stored, *_image_and_labels(0))])
    out = tmp_path / "a" / "b" / "out"
    before = _snapshot(tmp_path)
    formats = ["tiff", "geojson", "csv", "rois", "coco", "counts"]
    code, stdout, stderr = _run(
        ["export", "--project", str(root / "proj"), "--format", *formats, "--out", str(out)],
        capsys,
        caplog,
    )
    outside = _changed_outside(before, _snapshot(tmp_path), "a/b/out")
    written = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    unportable = [w for w in written if not _portable(w)]
    _report(
        {
            "kind": "names",
            "id": repr(name),
            "code": code,
            "outside": outside,
            "written": written,
            "unportable": unportable,
        }
    )
    assert code == 0 and "Traceback" not in stderr, stderr
    assert outside == []
    assert len(written) == 6, written
    assert unportable == [], unportable
    for path in out.iterdir():
        assert path.resolve().parent == out.resolve()


def _portable(file_name: str) -> bool:
    """A name Windows, macOS and Linux all accept as one plain file (no device name)."""
    device = re.match(r"(CON|PRN|AUX|NUL|COM\d|LPT\d)(\.|$)", file_name, re.IGNORECASE)
    return not (
        device or file_name.startswith((".", " ")) or re.search(r'[\x00-\x1f<>:"/\\|?*]', file_name)
    )


def test_export_duplicate_names_get_distinct_files(tmp_path, capsys, caplog):
    """Two (and three) images with the same name: name.tif, name-2.tif, name-3.tif."""
    items = [("same", *_image_and_labels(seed)) for seed in range(3)]
    items.append(("Same", *_image_and_labels(9)))  # differs only in case: distinct on macOS too
    _store_with(tmp_path / "proj", items)
    out = tmp_path / "out"
    code, stdout, stderr = _run(
        [
            "export",
            "--project",
            str(tmp_path / "proj"),
            "--format",
            "tiff",
            "geojson",
            "--out",
            str(out),
        ],
        capsys,
        caplog,
    )
    tiffs = sorted(p.name for p in out.glob("*.tif"))
    _report(
        {
            "kind": "overwrite",
            "id": "export-duplicates",
            "code": code,
            "inputs": 4,
            "outputs": len(tiffs),
        }
    )
    assert code == 0, stderr
    assert tiffs == ["Same-4.tif", "same-2.tif", "same-3.tif", "same.tif"]
    assert len(list(out.glob("*.geojson"))) == 4
    assert "exported as 'same-2'" in stderr


def test_predict_duplicate_stems_get_distinct_outputs_and_a_mapping(tmp_path, capsys, caplog):
    """``a/x.tif``, ``b/x.tif`` and ``b/x.png`` write x.tif, x-2.tif, x-3.tif; mapping.csv says which."""
    import csv

    import imageio.v3 as iio

    for i, folder in enumerate(("a", "b")):
        _tiff(tmp_path / folder / "x.tif", np.roll(GOOD, 10 * i, axis=0))
    iio.imwrite(tmp_path / "b" / "x.png", GOOD[::-1])
    out = tmp_path / "out"
    args = ["predict", str(tmp_path / "a" / "x.tif"), str(tmp_path / "b"), "--out", str(out)]
    code, stdout, stderr = _run(args, capsys, caplog)
    labels = sorted(p.name for p in out.glob("*.tif"))
    _report(
        {
            "kind": "overwrite",
            "id": "predict-duplicates",
            "code": code,
            "inputs": 3,
            "outputs": len(labels),
        }
    )
    assert code == 0, stderr
    assert labels == ["x-2.tif", "x-3.tif", "x.tif"]
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["x-2.png", "x-3.png", "x.png"]
    with open(out / "mapping.csv", newline="") as file:
        rows = {
            Path(r["input"]).relative_to(tmp_path).as_posix(): r["labels"]
            for r in csv.DictReader(file)
        }
    assert rows == {"a/x.tif": "x.tif", "b/x.png": "x-2.tif", "b/x.tif": "x-3.tif"}
    assert json.loads(stdout)["outputs"][str(tmp_path / "b" / "x.tif")] == "x-3.tif"
    assert stderr.count("same name") == 2  # one line per renamed input

"""Output names made from user-given image names: safe, unique, inside the output folder."""

from __future__ import annotations

import os

import pytest

from napari_cellist.io.naming import (
    FALLBACK_STEM,
    MAX_STEM_BYTES,
    confined,
    safe_stem,
    unique_stems,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("crop0", "crop0"),
        ("Cell 01 (DAPI)", "Cell 01 (DAPI)"),
        ("../../etc/passwd", "_.._etc_passwd"),
        ("/abs/x", "_abs_x"),
        ("a\\b", "a_b"),
        ("nul\x00byte", "nul_byte"),
        ("tab\there", "tab_here"),
        ('a:b*c?d"e<f>g|h', "a_b_c_d_e_f_g_h"),
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("LPT9", "_LPT9"),
        ("console", "console"),  # only the exact device names are reserved
        ("", FALLBACK_STEM),
        ("..", FALLBACK_STEM),
        (" . ", FALLBACK_STEM),
        (".hidden", "hidden"),
    ],
)
def test_safe_stem(name, expected):
    assert safe_stem(name) == expected


def test_safe_stem_caps_length_without_splitting_characters():
    stem = safe_stem("é" * 300)
    assert len(stem.encode("utf-8")) <= MAX_STEM_BYTES
    assert stem == "é" * (MAX_STEM_BYTES // 2)


def test_unique_stems_are_deterministic_and_case_insensitive():
    names = ["a", "a", "A", "a-2", "b"]
    stems = unique_stems(names)
    assert stems == ["a", "a-3", "A-4", "a-2", "b"]
    assert len({s.casefold() for s in stems}) == len(names)
    assert unique_stems(names) == stems


def test_confined_refuses_paths_outside(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert confined(out, "x.tif") == out / "x.tif"
    for bad in ("", ".", "..", "../x.tif", "a/b.tif", "nul\x00.tif"):
        with pytest.raises(ValueError, match="Refusing"):
            confined(out, bad)
    os.symlink(tmp_path, out / "link.tif")  # a planted link that points outside
    with pytest.raises(ValueError, match="outside the output folder"):
        confined(out, "link.tif")

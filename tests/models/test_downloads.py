"""Weights on first use against a real HTTP server on 127.0.0.1 that the tests start.

The server serves small files the tests make; registry entries are pointed at it with
``with_url`` (or a mirror through ``CELLIST_MODEL_MIRROR``). Nothing here reaches the internet.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import threading
import time

import pytest

from napari_cellist import downloads
from napari_cellist.downloads import (
    DownloadCancelled,
    DownloadError,
    WeightsFile,
    WeightsNotFoundError,
)
from napari_cellist.progress import drain

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture
def server(weights_server):
    return weights_server


@pytest.fixture(autouse=True)
def folders(tmp_path, monkeypatch):
    """Every library's cache folder in tmp_path; online unless a test says otherwise."""
    monkeypatch.setenv("CELLPOSE_LOCAL_MODELS_PATH", str(tmp_path / "cellpose"))
    monkeypatch.setenv("CELLIST_SAM_CACHE", str(tmp_path / "sam"))
    monkeypatch.setenv("MICROSAM_CACHEDIR", str(tmp_path / "micro_sam"))
    monkeypatch.delenv("CELLIST_OFFLINE", raising=False)
    monkeypatch.delenv("CELLIST_MODEL_MIRROR", raising=False)
    return tmp_path


def _entry(server, name="weights.pth", data=PAYLOAD, library="sam", **changes) -> WeightsFile:
    server.files[name] = data
    sha = "sha256:" + hashlib.sha256(data).hexdigest()
    item = WeightsFile(f"{library}/test", f"{server.base}/{name}", name, library, (sha,), len(data))
    return downloads.with_url(item, item.url, **changes)


def test_download_with_progress_lands_verified_in_the_library_folder(server, folders):
    item = _entry(server)
    seen = []
    path = downloads.fetch(item, on_progress=lambda done, total: seen.append((done, total)))
    assert path == folders / "sam" / "weights.pth"
    assert path.read_bytes() == PAYLOAD
    assert seen and seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert list(path.parent.iterdir()) == [path]  # no temporary file left


def test_progress_generator_reports_and_returns_the_file(server):
    server.delay_s = 0.02
    item = _entry(server)
    reports = []
    path = drain(downloads.fetch_iter(item, interval_s=0.01), reports.append)
    assert path.read_bytes() == PAYLOAD
    assert reports[0].message.startswith("downloading weights.pth")
    assert any(r.total == len(PAYLOAD) // 1000 and r.step > 0 for r in reports)


def test_checksum_mismatch_is_refused_and_nothing_is_kept(server, folders):
    item = _entry(server, hashes=("sha256:" + "0" * 64,))
    with pytest.raises(DownloadError) as info:
        downloads.fetch(item)
    message = str(info.value)
    assert "checksum does not match" in message and "Nothing was saved" in message
    assert "weights.pth" in message and str(folders / "sam") in message
    assert list((folders / "sam").iterdir()) == []


def test_xxh128_checksums_are_verified(server):
    xxhash = pytest.importorskip("xxhash")  # a dependency; present in the test environment
    good = _entry(server, hashes=("xxh128:" + xxhash.xxh128(PAYLOAD).hexdigest(),))
    assert good.known_hash.startswith("xxh128:")
    assert downloads.fetch(good).read_bytes() == PAYLOAD
    bad = _entry(server, name="other.pt", hashes=("xxh128:" + "1" * 32,))
    with pytest.raises(DownloadError, match="checksum"):
        downloads.fetch(bad)


def test_truncated_transfer_is_refused(server, folders):
    item = _entry(server)
    server.truncated.add("weights.pth")
    with pytest.raises(DownloadError, match="Could not download 'sam/test'"):
        downloads.fetch(item)
    assert list((folders / "sam").iterdir()) == []
    # without a known size or checksum (Cellpose's files) the Content-Length still catches it
    bare = _entry(server, library="cellpose", hashes=(), size=None)
    with pytest.raises(DownloadError):
        downloads.fetch(bare)
    assert list((folders / "cellpose").iterdir()) == []


def test_http_404_names_the_status_url_and_folder(server, folders):
    item = _entry(server)
    item = downloads.with_url(item, f"{server.base}/missing.pth")
    with pytest.raises(DownloadError) as info:
        downloads.fetch(item)
    message = str(info.value)
    assert "HTTP 404" in message and "/missing.pth" in message and str(folders / "sam") in message
    assert isinstance(info.value, WeightsNotFoundError)  # callers offer "choose a file"


def test_connection_refused(folders):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    item = WeightsFile("sam/test", f"http://127.0.0.1:{port}/w.pth", "w.pth", "sam")
    with pytest.raises(DownloadError, match="no connection"):
        downloads.fetch(item, timeout=5)
    assert not (folders / "sam" / "w.pth").exists()


def test_second_call_uses_the_cache_without_the_network(server):
    item = _entry(server)
    first = downloads.fetch(item)
    assert len(server.requests) == 1
    assert downloads.fetch(item) == first and drain(downloads.fetch_iter(item)) == first
    assert len(server.requests) == 1


def test_offline_never_touches_the_network(server, folders, monkeypatch):
    item = _entry(server)
    monkeypatch.setenv("CELLIST_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError) as info:
        downloads.fetch(item)
    assert not isinstance(info.value, DownloadError)
    message = str(info.value)
    assert "CELLIST_OFFLINE" in message and item.url in message and str(folders / "sam") in message
    assert server.requests == []


def test_mirror_serves_every_file_by_its_name(server, monkeypatch):
    item = WeightsFile(
        "sam/vit_b",
        "https://publisher.invalid/sam_vit_b.pth",
        "sam_vit_b.pth",
        "sam",
        ("sha256:" + hashlib.sha256(PAYLOAD).hexdigest(),),
    )
    server.files["sam_vit_b.pth"] = PAYLOAD
    monkeypatch.setenv("CELLIST_MODEL_MIRROR", server.base + "/")
    assert downloads.source_url(item) == f"{server.base}/sam_vit_b.pth"
    assert downloads.fetch(item).read_bytes() == PAYLOAD
    assert server.requests == ["/sam_vit_b.pth"]
    server.files["sam_vit_b.pth"] = b"tampered" + PAYLOAD[8:]  # checksums still apply
    item2 = downloads.with_url(item, item.url, filename="sam_vit_b.pth", library="micro_sam")
    with pytest.raises(DownloadError, match="checksum"):
        downloads.fetch(item2)


def test_stop_cancels_and_removes_the_partial_file(server, folders):
    server.delay_s = 0.05  # 16 chunks of 64 kB: ~0.8 s
    item = _entry(server)
    gen = downloads.fetch_iter(item, interval_s=0.01)
    for report in gen:
        if report.step > 0:
            break
    gen.close()  # what napari's worker does on Stop
    assert not (folders / "sam" / "weights.pth").exists()
    time.sleep(0.1)
    assert list((folders / "sam").iterdir()) == []
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(DownloadCancelled):
        downloads.fetch(item, cancel=cancel)


_CHILD = """
import sys
from napari_cellist import downloads
item = downloads.WeightsFile("sam/test", sys.argv[1], "weights.pth", "sam", (sys.argv[2],), int(sys.argv[3]))
print(downloads.fetch(item))
"""


def test_two_processes_at_first_use_leave_one_good_file(server, folders):
    server.delay_s = 0.02
    item = _entry(server)
    env = {
        "CELLIST_SAM_CACHE": str(folders / "sam"),
        "PATH": "/usr/bin:/bin",
    }
    args = [item.url, item.hashes[0], str(item.size)]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, *args], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [child.communicate(timeout=120)[0].strip() for child in children]
    assert [child.returncode for child in children] == [0, 0]
    target = folders / "sam" / "weights.pth"
    assert outputs == [str(target)] * 2
    assert list(target.parent.iterdir()) == [target]
    assert target.read_bytes() == PAYLOAD


def test_cli_progress_bar(server, capsys):
    item = _entry(server)
    downloads.fetch(item, progressbar=True)
    err = capsys.readouterr().err
    assert "weights.pth" in err and "100%" in err


# -- the registry ---------------------------------------------------------------------------


def test_registry_cellpose_files_are_named_and_placed_as_cellpose_does(monkeypatch, folders):
    """Our table agrees with the installed Cellpose 3.1 (names, URLs, folder)."""
    from cellpose import models

    asked = []
    monkeypatch.setattr(models, "cache_model_path", lambda basename: asked.append(basename))
    for name in downloads.CELLPOSE_NAMES:
        assert name in models.MODEL_NAMES
        models.model_path(name)
        item = downloads.get_file(f"cellpose/{name}")
        assert item.filename == asked[-1]
        assert item.url == f"{models._MODEL_URL}/{asked[-1]}"
        assert downloads.local_path(item) == folders / "cellpose" / asked[-1]
    for name in downloads.CELLPOSE_SIZE_MODELS:
        models.size_model_path(name)
        assert f"cellpose/{asked[-1]}" in downloads.REGISTRY


def test_registry_sam_and_micro_sam_entries():
    vit_b = downloads.get_file("sam/vit_b")
    assert vit_b.url == "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth"
    assert [h.split(":")[0] for h in vit_b.hashes] == ["xxh128", "sha256"]
    for name in ("vit_b_lm", "vit_l_lm", "vit_b_em_organelles"):
        item = downloads.get_file(f"micro_sam/{name}")
        assert item.filename == name and item.hashes[0].startswith("xxh128:")
        assert f"micro_sam/{name}_decoder" in downloads.REGISTRY
    assert downloads.local_path(downloads.get_file("micro_sam/vit_b_lm")).parent.name == "models"
    with pytest.raises(ValueError, match="known: sam/vit_b"):
        downloads.get_file("sam/vit_x")


def test_sha256_used_when_xxhash_is_missing(monkeypatch):
    from napari_cellist import weights_registry

    monkeypatch.setattr(weights_registry, "_has_xxhash", lambda: False)
    assert downloads.get_file("sam/vit_h").known_hash.startswith("sha256:")
    assert downloads.get_file("micro_sam/vit_b_lm").known_hash is None


def test_cached_file_is_found_without_download(folders):
    path = folders / "cellpose" / "cyto3"
    path.parent.mkdir()
    path.write_bytes(b"x")
    assert downloads.find("cellpose/cyto3") == path
    assert downloads.fetch("cellpose/cyto3") == path
    assert downloads.find("cellpose/nuclei") is None

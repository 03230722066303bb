"""The SAM click worker: decoding off the calling thread, the latest click wins."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from napari_cellist.models.sam.clicks import LatestClickWorker


def test_rapid_clicks_never_block_and_the_latest_is_answered():
    started = threading.Event()
    release = threading.Event()
    decoded, results = [], []

    def decode(request):
        decoded.append(request)
        started.set()
        release.wait(5)
        return request * 10

    worker = LatestClickWorker(decode, results.append)
    worker.submit(1)
    assert started.wait(5)  # click 1 is being decoded
    t0 = time.perf_counter()
    for click in range(2, 12):  # ten rapid clicks while the decoder is busy
        worker.submit(click)
    assert time.perf_counter() - t0 < 0.05  # submit never waits for decoding
    release.set()
    assert worker.wait_idle(5)
    worker.close()
    assert decoded == [1, 11]  # clicks 2..10 were dropped, the latest answered
    assert [(r.sequence, r.result) for r in results] == [(1, 10), (11, 110)]
    assert worker.dropped == 9


def test_errors_are_reported_and_the_worker_goes_on():
    results = []

    def decode(request):
        if request == "bad":
            raise ValueError("Give at least one point or a box as prompt.")
        return request

    worker = LatestClickWorker(decode, results.append)
    worker.submit("bad")
    worker.wait_idle(5)
    worker.submit("good")
    worker.wait_idle(5)
    worker.close()
    assert isinstance(results[0].error, ValueError) and results[1].result == "good"
    with pytest.raises(RuntimeError, match="closed"):
        worker.submit("late")


def test_with_a_real_segmenter(tmp_path):
    from napari_cellist.models.sam import architecture, weights
    from napari_cellist.models.sam.interactive import PromptableSegmenter

    sam, model_id = weights.load_sam(architecture.write_random_checkpoint(tmp_path / "t.pth"))
    segmenter = PromptableSegmenter(sam, model_id)
    image = np.zeros((64, 64), np.uint8)
    image[20:40, 20:40] = 200
    segmenter.set_image(image)
    results = []
    worker = LatestClickWorker(lambda p: segmenter.predict(points=[p]), results.append)
    for point in [(10, 10), (30, 30), (50, 50)]:
        worker.submit(point)
    assert worker.wait_idle(30)
    worker.close()
    assert results[-1].request == (50, 50) and results[-1].result.mask.shape == (64, 64)
    assert len(results) + worker.dropped == 3


def test_synchronous_mode_decodes_in_submit():
    results = []
    worker = LatestClickWorker(lambda r: threading.current_thread().name, results.append, True)
    assert worker.submit("x") == 1 and results[0].result == threading.current_thread().name
    assert worker.wait_idle(0) and worker.dropped == 0
    worker.close()

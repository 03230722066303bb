"""Progress generators: drain runs one to its result, relay passes one on inside another."""

from napari_cellist.progress import drain, relay
from napari_cellist.types import Progress


def _job(n: int):
    for i in range(1, n + 1):
        yield Progress(i, n, f"step {i}")
    return "result"


def test_relay_re_yields_every_report_and_returns_the_result():
    seen, history = [], []

    def outer():
        value = yield from relay(_job(3), history.append, prefix="plane 1/2: ")
        return value.upper()

    assert drain(outer(), seen.append) == "RESULT"
    assert [p.message for p in seen] == [f"plane 1/2: step {i}" for i in (1, 2, 3)]
    assert history == seen


def test_relay_without_options_is_transparent():
    assert list(relay(_job(2))) == list(_job(2))

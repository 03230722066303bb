"""The labelling-loop benchmark's quick mode: real Coelho crops, the threshold model, the product's
loop (seconds)."""

from __future__ import annotations

import json
import random

import pytest

from benchmarks._annotator import load_items, split_items
from benchmarks.bench_labelling_loop import main, summary, table
from napari_cellist.metrics import edit_counts
from napari_cellist.store import ProjectStore
from napari_cellist.what_next import usefulness_of

pytest.importorskip("tifffile")
ROUNDS = 2


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One quick run (3 orders x 2 rounds, one image per round), projects kept."""
    root = tmp_path_factory.mktemp("loop")
    out = root / "loop.json"
    argv = ["--quick", "--models", "threshold", "--rounds", str(ROUNDS), "--batch", "1"]
    result = main([*argv, "--workdir", str(root / "work"), "--out", str(out)])
    return result, json.loads(out.read_text()), root / "work"


def _arm(result, order):
    return next(a for a in result["arms"] if a["order"] == order)


def test_json_has_every_order_and_round(run):
    result, written, _ = run
    assert written["arms"] == json.loads(json.dumps(result["arms"], default=float))
    assert [a["order"] for a in written["arms"]] == ["useful", "file", "random"]
    assert set(written["test"]).isdisjoint(written["pool"])
    assert len(written["test"]) == 2 and len(written["pool"]) == 4  # 1 test per cell line
    for arm in written["arms"]:
        assert [r["round"] for r in arm["rounds"]] == list(range(ROUNDS))
        assert 0 <= arm["base"]["edits_per_100"] and 0 <= arm["base"]["ap50"] <= 1
        labelled = [name for r in arm["rounds"] for name in r["labelled"]]
        assert len(set(labelled)) == ROUNDS and set(labelled) <= set(written["pool"])
        for row in arm["rounds"]:
            assert row["test"]["edits_per_100"] >= 0
            assert {"edits_per_100_U2OS", "edits_per_100_NIH3T3"} <= set(row["test"])
            (retrained,) = row["retrain"]
            assert retrained["model"] == "threshold" and retrained["retrain_seconds"] > 0
            assert row["accepted"] == retrained["accepted"]
            assert not set(retrained["data_used"]) & set(retrained["held_out"])
    text = table(written["arms"])
    assert text.count("| threshold | useful |") == ROUNDS + 1  # base + rounds
    short = summary(written["arms"]).splitlines()[2:]
    assert [line.split(" | ")[1] for line in short] == ["useful", "file", "random"]
    assert all(
        line.endswith(f"| {sum(r['accepted'] for r in a['rounds'])}/{ROUNDS} |")
        for line, a in zip(short, written["arms"], strict=True)
    )


def test_edits_are_edit_counts_of_the_corrected_prediction(run):
    """The batch edits are edit_counts(truth, stored prediction), and the truth was committed
    against that prediction (the corrections log has its rows)."""
    result, _, work = run
    truths = {i.name: i.truth for i in load_items(quick=True)}
    for arm in result["arms"]:
        store = ProjectStore(work / f"threshold_{arm['order']}" / "project")
        try:
            commits = {c.image_id: c for c in store.commits()}
            logged = {r.commit_id for r in store.corrections()}
            for row in arm["rounds"]:
                for image in row["batch"]:
                    _, predicted, _ = store.load_prediction(image["image_id"])
                    expected = edit_counts(truths[image["name"]], predicted)
                    got = (image["deleted"], image["added"], image["redrawn"], image["n_true"])
                    assert got == (
                        expected.deleted,
                        expected.added,
                        expected.redrawn,
                        expected.n_true,
                    )
                    labels, _ = store.load_annotations(image["image_id"])
                    assert (labels > 0).sum() == (truths[image["name"]] > 0).sum()
                    assert commits[image["image_id"]].id in logged
            # one loop version per round, each the child of the one before when accepted
            assert len(store.model_versions("threshold")) == ROUNDS
        finally:
            store.close()


def test_orders_pick_what_they_should(run):
    result, written, work = run
    pool = written["pool"]
    file_order = [n for r in _arm(result, "file")["rounds"] for n in r["labelled"]]
    assert file_order == pool[:ROUNDS]
    random_order = [n for r in _arm(result, "random")["rounds"] for n in r["labelled"]]
    assert random_order[0] == pool[random.Random(0).sample(range(len(pool)), 1)[0]]
    # "useful": round 0 labels the pool image the base model doubts most (rank_images)
    store = ProjectStore(work / "threshold_useful" / "project")
    try:
        first = {}
        for record in store.prediction_history():
            first.setdefault(record.image_id, record)
        scores = {}
        for image_id, record in first.items():
            _, _, objects = store.load_prediction_by_id(record.id)
            scores[store.image(image_id).name] = usefulness_of(image_id, "", objects).score
        picked = _arm(result, "useful")["rounds"][0]["labelled"][0]
        assert scores[picked] == max(scores.values())
        assert len(first) == len(pool)  # every pool image was predicted to rank it
    finally:
        store.close()
    assert _arm(result, "useful")["rounds"][0]["labelled"] != file_order[:1]


def test_split_is_fixed_by_seed_not_by_scores():
    items = load_items(quick=True)
    test0, pool0 = split_items(items, 1, seed=0)
    assert [i.name for i in split_items(items, 1, seed=0)[0]] == [i.name for i in test0]
    assert sorted(i.group for i in test0) == ["NIH3T3", "U2OS"]
    assert [i.name for i in pool0] == sorted(i.name for i in pool0)

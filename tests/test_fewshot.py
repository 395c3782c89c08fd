"""The few-shot benchmark's rules against brute-force references, the shipped classifier against the benchmark's
figures, the CLI's score, and a regression test on the development set (skipped when it is absent)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from teachable.cli import main as cli_main
from teachable.frames import encode_jpeg
from teachable.knn import DEFAULT_K, MAX_BOUNDARY
from teachable.project import FORMAT_VERSION, Project

from .conftest import photo, views

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_fewshot as bench  # noqa: E402

DEVDATA = Path(__file__).resolve().parents[2] / "shared" / "devdata" / "tuxpaint_cutouts"


def planted(seed=0, classes=4, per_class=12, dim=24):
    rng = np.random.default_rng(seed)
    centres = np.abs(rng.normal(size=(classes, dim)))
    vectors = np.concatenate([np.abs(c + 0.5 * rng.normal(size=(per_class, dim))) for c in centres])
    labels = np.array([f"c{i}" for i in range(classes) for _ in range(per_class)])
    return vectors.astype(np.float32), labels


def test_knn_votes_equal_a_loop():
    rng = np.random.default_rng(1)
    similarities = rng.uniform(-1, 1, size=(7, 15))
    support_labels = rng.integers(0, 3, size=15)
    votes = bench.knn_votes(similarities, support_labels, 3, k=4)
    for row, sims in enumerate(similarities):
        expected = np.zeros(3)
        order = np.argsort(-sims)[:4]
        for i in order:
            expected[support_labels[i]] += np.exp((sims[i] - sims[order[0]]) / bench.DEFAULT_TEMPERATURE)
        np.testing.assert_allclose(votes[row], expected)


@pytest.mark.parametrize("rule", ["knn", "prototype"])
def test_own_scores_and_boundaries_equal_brute_force(rule):
    vectors, labels = planted()
    codes = np.unique(labels, return_inverse=True)[1]
    support = bench.unit(vectors)
    expected = []
    for i in range(len(support)):
        rest = np.flatnonzero((codes == codes[i]) & (np.arange(len(codes)) != i))
        if rule == "knn":
            expected.append(max(support[i] @ support[j] for j in rest))
        else:
            mean = support[rest].mean(axis=0)
            expected.append(support[i] @ mean / np.linalg.norm(mean))
    candidate = bench.Candidate("pool", "l2", rule, "class:0.2")
    np.testing.assert_allclose(bench.own_scores(candidate, support, codes), expected, atol=1e-6)
    per_class = bench.boundaries(candidate, support, codes, 4)
    for c in range(4):
        assert per_class[c] == pytest.approx(min(np.quantile(np.asarray(expected)[codes == c], 0.2), MAX_BOUNDARY))
    project = bench.boundaries(bench.Candidate("pool", "l2", rule, "project:0.3"), support, codes, 4)
    np.testing.assert_allclose(project, min(np.quantile(expected, 0.3), MAX_BOUNDARY))


def test_centring_and_square_root_use_the_project_only():
    vectors, _ = planted()
    support, queries = bench.normalised(vectors[:10], vectors[10:], "centre")
    mean = bench.unit(vectors[:10]).mean(axis=0)
    np.testing.assert_allclose(queries, bench.unit(bench.unit(vectors[10:]) - mean), atol=1e-6)
    _, rooted = bench.normalised(vectors[:10], vectors[10:], "sqrt")
    np.testing.assert_allclose(rooted, bench.unit(np.sqrt(vectors[10:])), atol=1e-6)


@pytest.mark.parametrize(
    "options, candidate", [({}, bench.CHOSEN), ({"rule": "knn", "threshold": 0.4}, bench.BASELINE)]
)
def test_shipped_classifier_matches_the_benchmarked_candidate(options, candidate):
    vectors, labels = planted(seed=2, per_class=15)
    rng = np.random.default_rng(3)
    taught, queries = bench.draw_split(labels[labels != "c3"], 10, rng)
    kept = np.flatnonzero(labels != "c3")
    taught, queries = kept[taught], np.concatenate([kept[queries], np.flatnonzero(labels == "c3")])
    truth, best, margin = bench.shipped_episode(options, vectors, labels, taught, queries)
    # the classifier stores the taught vectors at float16 precision (after making them unit length)
    mixed = bench.unit(vectors)
    mixed[taught] = mixed[taught].astype(np.float16).astype(np.float32)
    truth2, best2, score, support, codes = bench.decided(candidate, mixed, labels, taught, queries)
    limits = bench.boundaries(candidate, support, codes, 3)
    np.testing.assert_array_equal(truth, truth2)
    np.testing.assert_array_equal(best, best2)
    np.testing.assert_allclose(margin, score - limits[best2], atol=1e-4)


def test_cli_predict_reports_best_class_unknown_score_and_boundary(backbone, tmp_path, capsys):
    project = Project.for_backbone(backbone, ["cat", "coffee"])
    for name in ("chelsea", "coffee"):
        images = np.stack([backbone.prepare(v) for v in views(photo(name), 6, seed=1)])
        label = "cat" if name == "chelsea" else "coffee"
        project.add_examples(label, backbone.embed(images), [encode_jpeg(i) for i in images])
    path = project.save(tmp_path / "p.zip")
    far = tmp_path / "rocket.png"
    from PIL import Image

    Image.fromarray(photo("rocket")).save(far)
    assert cli_main(["predict", str(path), str(far), "--json", "--device", "cpu"]) == 0
    answer = json.loads(capsys.readouterr().out)[0]
    assert answer["label"] in ("cat", "coffee") and answer["unknown"] is True
    assert answer["score"] < answer["boundary"]
    assert cli_main(["predict", str(path), str(far), "--json", "--device", "cpu", "--strictness", "0"]) == 0
    lenient = json.loads(capsys.readouterr().out)[0]
    assert lenient["boundary"] <= answer["boundary"]
    with pytest.raises(SystemExit):
        cli_main(["predict", str(path), str(far), "--strictness", "2"])


def test_projects_saved_before_the_new_rule_load_and_predict_with_it(tmp_path):
    """The rule needs only the stored embeddings, so a format-1 file loads unchanged and predicts by prototypes."""
    vectors, labels = planted(per_class=6)
    project = Project("efficientnet_lite0", "pool", vectors.shape[1], classes=sorted(set(labels)))
    thumbnail = encode_jpeg(np.full((224, 224, 3), 128, np.uint8))
    for name in sorted(set(labels)):
        rows = labels == name
        project.add_examples(name, vectors[rows], [thumbnail] * int(rows.sum()))
    loaded = Project.load(project.to_bytes())
    assert loaded.manifest()["format_version"] == FORMAT_VERSION and loaded.classifier.rule == "prototype"
    prediction = loaded.predict(vectors[0], DEFAULT_K)
    assert prediction.label == labels[0] and prediction.boundary == pytest.approx(project.classifier.boundary)


@pytest.mark.skipif(not DEVDATA.is_dir(), reason="development data ../shared/devdata is not here")
def test_chosen_defaults_beat_the_baseline_on_the_development_set(backbone):
    from fewshot_data import embed_folder

    features = embed_folder(DEVDATA, ["pool"], "grey", backbone)
    labels, vectors = features.labels, bench.stacked(features, "pool")
    closed_draws, episodes = bench.closed_splits(labels, 10), bench.open_splits(labels, 5)
    figures = {
        candidate: bench.evaluate_family([candidate], vectors, labels, closed_draws, episodes)[0]
        for candidate in (bench.BASELINE, bench.CHOSEN)
    }
    baseline, chosen = figures[bench.BASELINE], figures[bench.CHOSEN]
    for shots in ("5-shot", "10-shot"):
        assert chosen["closed"][shots]["mean"] > baseline["closed"][shots]["mean"]
    assert chosen["closed"]["5-shot"]["mean"] > baseline["closed"]["10-shot"]["mean"] - 0.03
    assert chosen["open"]["mean"] > baseline["open"]["mean"] + 0.03
    assert chosen["open"]["auroc"] > baseline["open"]["auroc"]


def camera_features(seed=0, classes=4, per_class=14, copies=3, dim=24):
    """Planted features with camera-like copies: each photo's copies are small multiplicative jitters of it."""
    from fewshot_data import Features

    rng = np.random.default_rng(seed)
    centres = np.abs(rng.normal(size=(classes, dim)))
    # distinct photos: peaked and spread out, so that the boundary is under the cap
    vectors = np.concatenate([np.abs(c + 1.5 * rng.normal(size=(per_class, dim))) ** 4 for c in centres])
    labels = np.array([f"c{i}" for i in range(classes) for _ in range(per_class)])
    jittered = vectors[:, None] * np.abs(1 + 0.02 * rng.normal(size=(len(vectors), copies, dim)))
    taps = {"pool": vectors, "blocks.6": vectors[:, ::-1].copy(), "blocks.5": vectors ** 2}
    copied = {"pool": jittered, "blocks.6": jittered[:, :, ::-1].copy(), "blocks.5": jittered ** 2}
    return Features(taps, labels, tuple(dict.fromkeys(labels)), "grey", {}, copied)


def test_take_out_scores_equal_brute_force():
    vectors, labels = planted(seed=3)
    support = bench.unit(vectors)
    takes = np.arange(len(labels)) // 3
    expected = []
    for i in range(len(support)):
        rest = np.flatnonzero((labels == labels[i]) & (takes != takes[i]))
        mean = support[rest].mean(axis=0)
        expected.append(support[i] @ mean / np.linalg.norm(mean))
    np.testing.assert_allclose(bench.take_out_scores(support, labels, takes), expected, atol=1e-6)
    single = bench.take_out_scores(support, labels, np.zeros(len(labels), int))  # one take per class: nothing left
    assert np.isnan(single).all()


def test_camera_mode_rows_agree_with_the_shipped_classifier_and_the_take_lowers_the_boundary():
    features = camera_features()
    episodes = bench.open_splits(features.labels, 2)
    for after in (False, True):
        for _, taught, queries in episodes[:4]:
            shipped = bench.shipped_camera_episode(features, taught, queries, after)
            numpy_row = bench.scored_camera_episode(features, taught, queries, "pool / sqrt (the shipped score)", after)
            np.testing.assert_array_equal(shipped.best, numpy_row.best)
            np.testing.assert_allclose(shipped.margin, numpy_row.margin, atol=2e-3)  # float16 storage
    _, taught, queries = episodes[0]
    before = bench.shipped_camera_episode(features, taught, queries, False)
    after = bench.shipped_camera_episode(features, taught, queries, True)
    once = bench.fitted_once_episode(features, taught, queries)
    boundary = lambda e: float(np.median(e.score - e.margin))  # noqa: E731
    assert boundary(before) > boundary(after) + 0.02
    assert boundary(after) == pytest.approx(boundary(once), abs=0.03)
    figures = bench.camera_open_figures([after])
    assert 0 <= figures["not_sure_on_correct"] <= 1 and 0.5 <= figures["auroc_within"] <= 1

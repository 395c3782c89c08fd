import copy

import numpy as np
import pytest

from teachable.knn import MAX_BOUNDARY, KNNClassifier, KNNError, near_copy_takes, normalise
from teachable.knn_index import ExampleIndex


def clustered(rng, classes=3, per_class=20, dim=64, spread=0.6):
    centres = rng.normal(size=(classes, dim))
    vectors = np.concatenate([c + spread * rng.normal(size=(per_class, dim)) for c in centres])
    labels = [f"class{i}" for i in range(classes) for _ in range(per_class)]
    return vectors.astype(np.float32), labels


def test_faiss_neighbours_equal_brute_force():
    rng = np.random.default_rng(0)
    vectors, labels = clustered(rng, dim=1280, per_class=300)
    knn = KNNClassifier(1280)
    knn.add(vectors, labels)
    queries = rng.normal(size=(50, 1280)).astype(np.float32)
    similarities, indices = knn.search(queries, 10)
    brute = normalise(queries) @ knn.vectors.T  # the stored (float16-precision) vectors
    expected = np.argsort(-brute, axis=1)[:, :10]
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(similarities, np.take_along_axis(brute, expected, 1), atol=1e-5)


def brute_force_vote(knn, vectors, labels, query, k, exclude=None):
    sims = knn.vectors @ normalise(query)[0]
    if exclude is not None:
        sims[exclude] = -np.inf
    order = np.argsort(-sims, kind="stable")[:k]
    votes = {}
    for i in order:
        votes[labels[i]] = votes.get(labels[i], 0.0) + np.exp((sims[i] - sims[order[0]]) / knn.temperature)
    return max(votes, key=votes.get)


def test_leave_one_out_equals_brute_force_recomputation():
    rng = np.random.default_rng(1)
    vectors, labels = clustered(rng, dim=8, spread=1.5)
    knn = KNNClassifier(vectors.shape[1], rule="knn")
    knn.add(vectors, labels)
    evaluation = knn.leave_one_out(k=5)
    expected = [brute_force_vote(knn, vectors, labels, v, 5, exclude=i) for i, v in enumerate(vectors)]
    assert list(evaluation.predicted_labels) == expected
    assert 0 < evaluation.accuracy < 1  # the spread makes some mistakes, so the check has teeth
    correct = sum(t == p for t, p in zip(labels, expected))
    assert evaluation.accuracy == pytest.approx(correct / len(labels))
    assert evaluation.confusion.sum() == len(labels)
    for i, name in enumerate(evaluation.classes):
        rows = [p for t, p in zip(labels, expected) if t == name]
        assert evaluation.per_class_accuracy[name] == pytest.approx(rows.count(name) / len(rows))
        assert evaluation.confusion[i].sum() == len(rows)


def test_prediction_agrees_with_brute_force_and_reports_neighbours():
    rng = np.random.default_rng(2)
    vectors, labels = clustered(rng, spread=1.2)
    knn = KNNClassifier(vectors.shape[1], rule="knn")
    knn.add(vectors, labels)
    for query in rng.normal(size=(20, vectors.shape[1])):
        prediction = knn.predict(query, k=7)
        assert prediction.label == brute_force_vote(knn, vectors, labels, query, 7)
        assert len(prediction.neighbours) == 7
        sims = [n.similarity for n in prediction.neighbours]
        assert sims == sorted(sims, reverse=True) and prediction.nearest_similarity == sims[0]
        assert all(labels[n.index] == n.label for n in prediction.neighbours)
        assert sum(prediction.confidences.values()) <= 1.0 + 1e-6


def test_one_class_is_not_certain_about_everything():
    knn = KNNClassifier(3, min_similarity=0.5, rule="knn")
    knn.add([[1, 0, 0], [0.95, 0.05, 0]], "cup")
    near = knn.predict([1, 0.02, 0])
    far = knn.predict([0, 0, 1])
    assert near.label == "cup" and not near.is_unknown and near.confidences["cup"] > 0.99
    assert far.is_unknown and far.shown_label == "unknown"
    assert far.confidences["cup"] < 0.01


def test_predict_with_no_examples_says_what_to_do():
    with pytest.raises(KNNError, match="Record or add a few examples"):
        KNNClassifier(8).predict(np.ones(8))


def test_k_larger_than_examples_is_capped():
    knn = KNNClassifier(2)
    knn.add([[1, 0], [0, 1]], ["a", "b"])
    assert len(knn.predict([1, 0.1], k=50).neighbours) == 2


@pytest.mark.parametrize(
    "bad", [np.full(4, np.nan), np.zeros(4), np.ones(5), np.array([1, np.inf, 0, 0])], ids=["nan", "zero", "dim", "inf"]
)
def test_bad_embeddings_are_refused_and_nothing_changes(bad):
    knn = KNNClassifier(4)
    knn.add(np.eye(4), ["a", "b", "c", "d"])
    with pytest.raises(KNNError):
        knn.add(bad, "a")
    assert len(knn) == 4
    with pytest.raises(KNNError):
        knn.predict(bad)


def test_remove_rename_and_relabel_keep_index_in_step():
    knn = KNNClassifier(3)
    knn.add(np.eye(3), ["a", "b", "c"])
    knn.predict([1, 0, 0])  # builds the index
    knn.remove([0])
    assert knn.labels == ("b", "c") and knn.predict([1, 0.1, 0]).label == "b"
    knn.rename_class("b", "bee")
    assert knn.predict([0, 1, 0]).label == "bee"
    knn.relabel(1, "bee")
    assert knn.classes == ("bee",)
    knn.remove_class("bee")
    assert len(knn) == 0
    with pytest.raises(KNNError, match="already"):
        knn.add(np.eye(3)[:2], ["x", "y"]) or knn.rename_class("x", "y")
    with pytest.raises(KNNError, match="out of range"):
        knn.remove([7])


def test_leave_one_out_needs_two_classes():
    knn = KNNClassifier(2)
    knn.add([[1, 0], [1, 0.1], [1, 0.2]], "a")
    with pytest.raises(KNNError, match="two classes"):
        knn.leave_one_out()


# ----------------------------------------------------------------- approximate index, storage precision
def manifold(rng, count, dim=256, classes=20, rank=6):
    """Clustered vectors of low intrinsic dimension (like CNN embeddings): each class a few directions."""
    centres = np.abs(rng.normal(size=(classes, dim)))
    bases = 0.3 * rng.normal(size=(classes, rank, dim))
    labels = rng.integers(0, classes, count)
    vectors = centres[labels] + np.einsum("nr,nrd->nd", rng.normal(size=(count, rank)), bases[labels])
    return vectors.astype(np.float32), [f"class{i}" for i in labels]


def test_large_classifier_switches_to_an_approximate_index_with_high_recall():
    rng = np.random.default_rng(5)
    vectors, labels = manifold(rng, 3100)
    vectors, labels, queries = vectors[:3000], labels[:3000], vectors[3000:]  # queries from the same classes
    exact = KNNClassifier(256, approximate_from=None)
    exact.add(vectors, labels)
    knn = KNNClassifier(256, approximate_from=2000)
    knn.add(vectors, labels)
    assert knn.index_kind == "flat"
    first = knn.search(queries, 10)[1]  # answered by the flat index while the IVF index is built
    np.testing.assert_array_equal(first, exact.search(queries, 10)[1])
    assert knn.wait_for_index(timeout=60) == "ivf"
    truth, found = exact.search(queries, 10)[1], knn.search(queries, 10)[1]
    recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found)])
    assert recall >= 0.99
    # Probing every list is exhaustive: then the approximate index must agree with the flat one exactly.
    knn.index.approximate.nprobe = knn.index.approximate.nlist
    np.testing.assert_array_equal(knn.search(queries, 10)[1], truth)


def test_examples_added_or_removed_after_the_switch_are_searched_correctly():
    rng = np.random.default_rng(7)
    vectors, labels = manifold(rng, 2500)
    knn = KNNClassifier(256, approximate_from=2000)
    knn.add(vectors, labels)
    knn.search(vectors[:1], 1)
    assert knn.wait_for_index(timeout=60) == "ivf"
    novel = np.zeros((1, 256), np.float32)
    novel[0, :3] = 1  # unlike every clustered vector
    knn.add(novel, "new")
    similarities, rows = knn.search(novel, 1)
    assert rows[0, 0] == 2500 and similarities[0, 0] == pytest.approx(1, abs=1e-3)
    knn.remove([0, 1])
    assert knn.index_kind == "flat"  # exact at once after a removal; rows have moved up
    assert knn.search(novel, 1)[1][0, 0] == 2498
    assert knn.wait_for_index(timeout=60) == "ivf"
    assert knn.search(novel, 1)[1][0, 0] == 2498
    assert knn.predict(novel[0], k=1).label == "new"


def test_building_the_index_never_blocks_queries(monkeypatch):
    import threading

    release = threading.Event()
    original = ExampleIndex._build_approximate

    def held_build(self, snapshot, generation):
        release.wait(30)
        original(self, snapshot, generation)

    monkeypatch.setattr(ExampleIndex, "_build_approximate", held_build)
    rng = np.random.default_rng(8)
    vectors, labels = manifold(rng, 1200)
    knn = KNNClassifier(256, approximate_from=1000)
    knn.add(vectors, labels)
    for _ in range(20):  # the build is held: every query is answered, by the flat index
        assert knn.predict(vectors[0], k=3).neighbours[0].index == 0
    assert knn.index_kind == "flat"
    knn.add(vectors[:5] * 2, labels[:5])  # added while the build waits: must end up in the new index
    release.set()
    assert knn.wait_for_index(timeout=60) == "ivf"
    assert len(knn) == 1205 and knn.index.approximate.ntotal == 1205


def test_a_build_overtaken_by_a_removal_is_discarded(monkeypatch):
    import threading

    release = threading.Event()
    original = ExampleIndex._build_approximate
    monkeypatch.setattr(
        ExampleIndex, "_build_approximate", lambda self, *args: (release.wait(30), original(self, *args))
    )
    vectors, labels = manifold(np.random.default_rng(9), 1200)
    knn = KNNClassifier(256, approximate_from=1000)
    knn.add(vectors, labels)
    knn.search(vectors[:1], 1)
    knn.remove([0])
    release.set()
    assert knn.wait_for_index(timeout=60) == "flat"  # the old build would have mapped rows wrongly
    assert knn.search(vectors[1:2], 1)[1][0, 0] == 0


def test_vectors_are_kept_at_float16_precision_and_unit_length():
    rng = np.random.default_rng(10)
    knn = KNNClassifier(64)
    raw = rng.normal(size=(50, 64)).astype(np.float32)
    knn.add(raw, "a")
    stored = knn.vectors
    np.testing.assert_array_equal(stored, stored.astype(np.float16).astype(np.float32))
    np.testing.assert_allclose(np.linalg.norm(stored, axis=1), 1, atol=1e-3)
    # Adding the stored vectors again changes nothing (what loading a saved project does).
    again = KNNClassifier(64)
    again.add(stored, "a")
    np.testing.assert_array_equal(again.vectors, stored)
    assert np.abs(stored @ normalise(raw).T - normalise(raw) @ normalise(raw).T).max() < 2e-3


def test_deep_copy_is_independent_and_searchable():
    import copy

    vectors, labels = manifold(np.random.default_rng(11), 300)
    knn = KNNClassifier(256)
    knn.add(vectors, labels)
    twin = copy.deepcopy(knn)
    twin.remove([0])
    assert len(knn) == 300 and len(twin) == 299
    assert knn.search(vectors[:1], 1)[1][0, 0] == 0
    # Both append (into spare room of their buffers): neither sees the other's example.
    knn.add(vectors[5], "mine")
    twin.add(vectors[9], "theirs")
    assert knn.labels[-1] == "mine" and twin.labels[-1] == "theirs"
    np.testing.assert_array_equal(knn.vectors[-1], knn.vectors[5])
    np.testing.assert_array_equal(twin.vectors[-1], twin.vectors[8])


def test_views_of_the_vectors_are_unchanged_by_later_adds():
    knn = KNNClassifier(8)
    knn.add(np.eye(8)[:3], "a")
    before = knn.vectors
    frozen = before.copy()
    for row in range(3, 8):
        knn.add(np.eye(8)[row], "b")
    np.testing.assert_array_equal(before, frozen)
    np.testing.assert_array_equal(knn.vectors, np.eye(8, dtype=np.float32))


def test_gpu_indexes_are_requested_only_where_faiss_has_gpus(monkeypatch):
    """CI has faiss-cpu: check the wiring with a stand-in for faiss's GPU calls that records them and keeps the CPU
    index, so the answers must stay exactly the CPU ones."""
    import faiss

    from teachable import knn_index

    with pytest.raises(KNNError, match="no GPU"):
        KNNClassifier(8, use_gpu=True)
    assert KNNClassifier(8).use_gpu is False

    moved = []
    monkeypatch.setattr(knn_index, "gpu_count", lambda: 1)
    monkeypatch.setattr(faiss, "StandardGpuResources", lambda: "resources", raising=False)
    monkeypatch.setattr(
        faiss, "index_cpu_to_gpu", lambda res, device, index: moved.append(type(index)) or index, raising=False
    )
    vectors, labels = manifold(np.random.default_rng(12), 1100)
    on_gpu = KNNClassifier(256, approximate_from=1000)
    assert on_gpu.use_gpu
    on_cpu = KNNClassifier(256, approximate_from=None, use_gpu=False)
    for knn in (on_gpu, on_cpu):
        knn.add(vectors, labels)
    np.testing.assert_array_equal(on_gpu.search(vectors[:20], 5)[1], on_cpu.search(vectors[:20], 5)[1])
    assert on_gpu.wait_for_index(timeout=60) == "ivf"
    assert moved == [faiss.IndexFlatIP, faiss.IndexIVFFlat]


# ------------------------------------------------------------------ the default rule: nearest class mean
def brute_mapped(vectors):
    rooted = np.sign(vectors) * np.sqrt(np.abs(vectors))
    return rooted / np.linalg.norm(rooted, axis=1, keepdims=True)


def brute_prototype_rule(stored, labels, query, strictness):
    """Reference: prototypes, leave-one-out scores and the quantile boundary, from scratch with plain numpy."""
    mapped_rows, labels = brute_mapped(stored.astype(np.float64)), np.asarray(labels)
    names = list(dict.fromkeys(labels))
    centre = {c: mapped_rows[labels == c].mean(axis=0) for c in names}
    frame = brute_mapped(normalise(query).astype(np.float64))[0]
    scores = np.array([frame @ (centre[c] / np.linalg.norm(centre[c])) for c in names])
    own = []
    for i, label in enumerate(labels):
        rest = np.flatnonzero((labels == label) & (np.arange(len(labels)) != i))
        if len(rest):
            mean = mapped_rows[rest].mean(axis=0)
            own.append(mapped_rows[i] @ mean / np.linalg.norm(mean))
    boundary = min(np.quantile(own, strictness), MAX_BOUNDARY)
    return names[int(np.argmax(scores))], scores.max(), boundary, np.asarray(own)


@pytest.mark.parametrize("strictness", [0.0, 0.2, 0.5])
def test_prototype_prediction_equals_brute_force(strictness):
    rng = np.random.default_rng(3)
    vectors, labels = clustered(rng, spread=1.5)
    knn = KNNClassifier(vectors.shape[1], strictness=strictness)
    knn.add(vectors, labels)
    for query in rng.normal(size=(20, vectors.shape[1])).astype(np.float32):
        label, score, boundary, _ = brute_prototype_rule(knn.vectors, labels, query, strictness)
        prediction = knn.predict(query, k=3)
        assert prediction.label == label
        assert prediction.score == pytest.approx(score, abs=1e-5)
        assert prediction.boundary == pytest.approx(boundary, abs=1e-5) == pytest.approx(knn.boundary, abs=1e-5)
        assert prediction.unknown == (score < boundary) == prediction.is_unknown
        assert prediction.shown_label == ("unknown" if prediction.unknown else label)
        assert len(prediction.neighbours) == 3 and 0 < sum(prediction.confidences.values()) <= 1 + 1e-6


def test_prototype_leave_one_out_equals_brute_force():
    rng = np.random.default_rng(4)
    vectors, labels = clustered(rng, dim=8, spread=1.5)
    knn = KNNClassifier(8)
    knn.add(vectors, labels)
    stored = knn.vectors.astype(np.float64)
    expected = []
    for i in range(len(labels)):
        keep = np.arange(len(labels)) != i
        expected.append(brute_prototype_rule(stored[keep], np.asarray(labels)[keep], stored[i], 0.2)[0])
    assert list(knn.leave_one_out().predicted_labels) == expected
    own = brute_prototype_rule(stored, labels, stored[0], 0.2)[3]
    np.testing.assert_allclose(knn.own_scores(), own, atol=1e-5)


def test_running_sums_match_a_fresh_classifier_after_every_kind_of_change():
    rng = np.random.default_rng(5)
    vectors, labels = clustered(rng, spread=1.0)
    knn = KNNClassifier(vectors.shape[1])
    for vector, label in zip(vectors, labels):  # one at a time, predicting in between, as a live page does
        knn.add(vector, label)
        knn.predict(vector)
    knn.remove([0, 5, 33])
    knn.relabel(3, "class2")
    knn.rename_class("class1", "hand")
    knn.add(vectors[:2], "hand")
    fresh = KNNClassifier(vectors.shape[1])
    fresh.add(knn.vectors, list(knn.labels))
    for query in rng.normal(size=(5, vectors.shape[1])):
        a, b = knn.predict(query), fresh.predict(query)
        assert (a.label, a.unknown) == (b.label, b.unknown)
        assert a.score == pytest.approx(b.score, abs=1e-5) and a.boundary == pytest.approx(b.boundary, abs=1e-5)


def test_a_new_example_changes_the_next_prediction():
    knn = KNNClassifier(3)
    knn.add([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0.1, 0.9, 0]], ["cup", "cup", "hand", "hand"])
    query = [0, 0.2, 1]
    assert knn.predict(query).label in ("cup", "hand")
    knn.add([[0, 0.1, 1], [0.05, 0, 1]], "pen")
    assert knn.predict(query).label == "pen"


def test_default_rule_is_not_sure_far_from_every_class_but_keeps_the_best_guess():
    rng = np.random.default_rng(6)
    vectors, labels = clustered(rng, per_class=10, dim=32, spread=0.3)
    knn = KNNClassifier(32)
    knn.add(np.abs(vectors), labels)  # non-negative, like the pooled ReLU6 features
    near = knn.predict(np.abs(vectors[0]) + 0.01)
    far = knn.predict(np.abs(rng.normal(size=32)) ** 4)  # peaked where no class is
    assert not near.unknown and near.label == "class0"
    assert far.unknown and far.shown_label == "unknown" and far.label in knn.classes
    assert far.score < far.boundary and near.score >= near.boundary


def test_boundary_falls_back_until_there_is_something_to_calibrate_on():
    knn = KNNClassifier(3)
    knn.add([[1, 0, 0], [0, 1, 0]], ["cup", "hand"])  # one example per class: no leave-one-out scores
    assert knn.boundary == pytest.approx(0.6)
    assert knn.predict([1, 0.1, 0]).boundary == pytest.approx(0.6)


def test_strictness_orders_the_boundary():
    rng = np.random.default_rng(7)
    vectors, labels = clustered(rng, spread=1.0)
    knn = KNNClassifier(vectors.shape[1])
    knn.add(vectors, labels)
    boundaries = []
    for strictness in (0.0, 0.1, 0.5, 1.0):
        knn.strictness = strictness
        boundaries.append(knn.boundary)
    assert boundaries == sorted(boundaries) and boundaries[0] < boundaries[-1]


def test_near_copies_of_one_view_do_not_make_their_own_object_unknown():
    """A class recorded from a still camera: near-copies of one view. Its boundary is capped, so the same object
    after a small change is still known, while an unrelated vector is not."""
    rng = np.random.default_rng(11)
    views = {name: np.abs(rng.normal(size=64)) for name in ("cup", "hand")}
    knn = KNNClassifier(64)
    for name, view in views.items():
        knn.add(view + rng.normal(scale=0.002, size=(20, 64)), [name] * 20)
    assert knn.boundary == pytest.approx(MAX_BOUNDARY)
    moved = knn.predict(views["cup"] + np.abs(rng.normal(scale=0.3, size=64)))
    assert moved.label == "cup" and not moved.unknown
    assert knn.predict(np.abs(rng.normal(size=64)) ** 4).unknown


def test_unknown_rule_is_refused():
    with pytest.raises(KNNError, match="prototype"):
        KNNClassifier(3, rule="svm")


# ----------------------------------------------------------------- takes
def brute_take_out_scores(stored, labels, takes):
    """Reference: each example against the mean of its class's mapped vectors from other takes (NaN if none)."""
    rows, labels, takes = brute_mapped(stored.astype(np.float64)), np.asarray(labels), np.asarray(takes)
    scores = []
    for i in range(len(rows)):
        rest = np.flatnonzero((labels == labels[i]) & (takes != takes[i]))
        mean = rows[rest].mean(axis=0) if len(rest) else None
        scores.append(rows[i] @ mean / np.linalg.norm(mean) if len(rest) else np.nan)
    return np.array(scores)


def recorded_views(rng, classes=3, views_per_class=8, copies=4, dim=64, spread=1.5, jitter=0.01):
    """Each class a few distinct views (non-negative and peaked, like pooled ReLU6 features), each view recorded as
    ``copies`` near-copies in one take: vectors, labels, takes, and the one-vector-per-view project's vectors and
    labels, and a function that makes new views of a class."""
    centres = np.abs(rng.normal(size=(classes, dim)))

    def new_views(count, of_class):
        return np.abs(centres[of_class] + spread * rng.normal(size=(count, dim))) ** 4

    views = np.stack([new_views(views_per_class, c) for c in range(classes)])
    copies_of = views[:, :, None] * np.abs(1 + jitter * rng.normal(size=(classes, views_per_class, copies, dim)))
    labels = [f"class{c}" for c in range(classes) for _ in range(views_per_class * copies)]
    takes = [c * views_per_class + v for c in range(classes) for v in range(views_per_class) for _ in range(copies)]
    once_labels = [f"class{c}" for c in range(classes) for _ in range(views_per_class)]
    vectors = copies_of.reshape(-1, dim).astype(np.float32)
    return vectors, labels, takes, views.reshape(-1, dim).astype(np.float32), once_labels, new_views


def test_near_copies_in_a_take_inflate_the_boundary_only_when_each_copy_is_scored_alone():
    """The live page's failure: a held recording stores near-copies of each view. Scored one example at a time,
    each copy still has its near-copies in the class, so the boundary rises; leaving the take out brings it back
    to what the same views give when each is taught once."""
    rng = np.random.default_rng(21)
    vectors, labels, takes, once, once_labels, new_views = recorded_views(rng)
    fitted_once = KNNClassifier(64)
    fitted_once.add(once, once_labels)
    per_example = KNNClassifier(64)
    per_example.add(vectors, labels)  # every copy a take of its own: the former leave-one-out
    by_take = KNNClassifier(64)
    by_take.add(vectors, labels, takes)
    assert per_example.boundary < MAX_BOUNDARY  # the cap does not hide the difference
    assert per_example.boundary > fitted_once.boundary + 0.05
    assert by_take.boundary == pytest.approx(fitted_once.boundary, abs=0.02)
    # new views of a class that it recognises with takes, but calls "not sure" when near-copies set the boundary
    predictions = [by_take.predict(view) for view in new_views(40, 0)]
    rescued = [p for p in predictions if p.label == "class0" and by_take.boundary <= p.score < per_example.boundary]
    assert len(rescued) >= 4


def test_take_out_scores_equal_brute_force_and_a_whole_class_take_has_none():
    rng = np.random.default_rng(22)
    vectors, labels = clustered(rng, dim=16, spread=1.2)
    takes = list(rng.integers(0, 6, size=len(labels)))
    labels[-5:] = ["lonely"] * 5
    takes[-5:] = [99] * 5  # a class recorded in one take
    knn = KNNClassifier(16)
    knn.add(vectors, labels, takes)
    expected = brute_take_out_scores(knn.vectors, labels, takes)
    np.testing.assert_allclose(knn.own_scores(), expected, atol=1e-5)
    assert np.isnan(knn.own_scores()[-5:]).all()
    finite = np.sort(expected[np.isfinite(expected)])
    assert knn.boundary == pytest.approx(min(np.quantile(finite, 0.2), MAX_BOUNDARY), abs=1e-5)
    np.testing.assert_allclose(knn.own_scores(leave_take_out=False), brute_take_out_scores(
        knn.vectors, labels, np.arange(len(labels))), atol=1e-5)


def test_prototype_leave_one_out_leaves_the_take_out():
    rng = np.random.default_rng(23)
    vectors, labels = clustered(rng, dim=8, spread=1.5)
    takes = [i // 4 for i in range(len(labels))]  # takes of 4 consecutive examples (one class each)
    knn = KNNClassifier(8)
    knn.add(vectors, labels, takes)
    stored, labels_array, takes_array = knn.vectors.astype(np.float64), np.asarray(labels), np.asarray(takes)
    expected = []
    for i in range(len(labels)):
        keep = takes_array != takes_array[i]
        names, others = list(dict.fromkeys(labels)), brute_mapped(stored[keep])
        frame = brute_mapped(stored[i : i + 1])[0]
        scores = []
        for name in names:
            rows = others[labels_array[keep] == name] if name == labels[i] else brute_mapped(stored[labels_array == name])
            mean = rows.mean(axis=0)
            scores.append(frame @ mean / np.linalg.norm(mean))
        expected.append(names[int(np.argmax(scores))])
    assert list(knn.leave_one_out().predicted_labels) == expected
    per_example = KNNClassifier(8)
    per_example.add(vectors, labels)
    assert knn.leave_one_out().accuracy <= per_example.leave_one_out().accuracy


def test_a_class_recorded_in_one_take_is_checked_against_its_take_mates():
    knn = KNNClassifier(3)
    knn.add([[1, 0, 0], [0.9, 0.1, 0], [0.95, 0, 0.05]], "cup", knn.new_take())
    knn.add([[0, 1, 0], [0.1, 0.9, 0], [0, 0.95, 0.05]], "hand", knn.new_take())
    assert np.isnan(knn.own_scores()).all() and knn.boundary == pytest.approx(0.6)  # nothing to calibrate on
    assert knn.leave_one_out().accuracy == 1.0


def test_others_nearest_skips_take_mates_and_the_knn_rule_leaves_takes_out():
    rng = np.random.default_rng(24)
    vectors, labels = clustered(rng, dim=8, spread=1.5)
    takes = [i // 3 for i in range(len(labels))]
    knn = KNNClassifier(8, rule="knn")
    knn.add(vectors, labels, takes)
    similarities, rows = knn.others_nearest(k=5)
    brute = knn.vectors @ knn.vectors.T
    for row in range(len(labels)):
        allowed = np.flatnonzero(np.asarray(takes) != takes[row])
        nearest = allowed[np.argsort(-brute[row, allowed], kind="stable")[:5]]
        np.testing.assert_allclose(similarities[row], brute[row, nearest], atol=1e-5)
        assert not set(rows[row]) & set(np.flatnonzero(np.asarray(takes) == takes[row]))
    expected = [
        brute_force_vote(knn, vectors, labels, v, 5, exclude=np.flatnonzero(np.asarray(takes) == takes[i]))
        for i, v in enumerate(knn.vectors)
    ]
    assert list(knn.leave_one_out(k=5).predicted_labels) == expected


def test_near_copy_takes_join_near_copies_of_one_class_only():
    base = np.eye(4, dtype=np.float32)
    vectors = np.stack([base[0], base[1], base[0] + 0.01 * base[1], base[2], base[0], base[2] + 0.5 * base[3]])
    labels = ["a", "a", "a", "a", "b", "a"]
    takes = near_copy_takes(vectors, labels)
    assert list(takes) == [0, 1, 0, 2, 3, 4]  # rows 0 and 2 are near-copies; row 4 is the same vector in "b"
    chain = np.stack([np.cos(a) * base[0] + np.sin(a) * base[1] for a in (0.0, 0.3, 0.6, 0.9)])
    assert len(set(near_copy_takes(chain, ["a"] * 4, similarity=0.95))) == 1  # linked through neighbours
    assert len(set(near_copy_takes(chain, ["a"] * 4, similarity=0.99))) == 4


def test_takes_survive_changes_and_copies_and_new_takes_are_fresh():
    rng = np.random.default_rng(25)
    vectors, labels = clustered(rng, spread=1.0)
    knn = KNNClassifier(vectors.shape[1])
    takes = [i // 5 for i in range(len(labels))]
    for vector, label, take in zip(vectors, labels, takes):  # one at a time, predicting in between
        knn.add(vector, label, take)
        knn.predict(vector)
    assert knn.new_take() == max(takes) + 1 and knn.new_take() == max(takes) + 2
    knn.remove([0, 7, 33])
    knn.relabel(3, "class2")
    knn.add(vectors[:2], "class1")  # each its own, fresh take
    assert knn.takes[-2:] == (max(takes) + 3, max(takes) + 4)
    fresh = KNNClassifier(vectors.shape[1])
    fresh.add(knn.vectors, list(knn.labels), list(knn.takes))
    np.testing.assert_allclose(knn.own_scores(), fresh.own_scores(), atol=1e-5)
    assert knn.boundary == pytest.approx(fresh.boundary, abs=1e-6)
    copied = copy.deepcopy(knn)
    assert copied.takes == knn.takes and copied.new_take() == knn.new_take()
    with pytest.raises(KNNError, match="take"):
        knn.add(vectors[:2], "class1", [1])
    with pytest.raises(KNNError, match="take"):
        knn.add(vectors[:1], "class1", -1)


def test_each_rule_names_its_own_knob_and_threshold_is_the_active_one():
    """The page has one slider, ``threshold``: the prototype rule reads it as its strictness (a quantile), the vote
    rule as its minimum similarity (a cosine). Each knob keeps its own value."""
    prototype = KNNClassifier(3, threshold=0.3)
    assert (prototype.strictness, prototype.min_similarity, prototype.threshold) == (0.3, 0.4, 0.3)
    prototype.threshold = 0.1
    assert prototype.strictness == 0.1 and prototype.min_similarity == 0.4
    votes = KNNClassifier(3, threshold=0.5, rule="knn")
    assert (votes.strictness, votes.min_similarity, votes.threshold) == (0.2, 0.5, 0.5)
    votes.add([[1, 0, 0], [0, 1, 0]], ["cup", "hand"])
    votes.threshold = 0.9
    assert votes.min_similarity == 0.9 == votes.boundary and votes.predict([1, 0.6, 0]).unknown
    assert votes.strictness == 0.2
    twin = copy.deepcopy(votes)
    assert (twin.rule, twin.threshold, twin.strictness, twin.temperature) == ("knn", 0.9, 0.2, votes.temperature)

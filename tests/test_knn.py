import numpy as np
import pytest

from teachable.knn import KNNClassifier, KNNError, normalise


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
    knn = KNNClassifier(vectors.shape[1])
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
    knn = KNNClassifier(vectors.shape[1])
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
    knn = KNNClassifier(3, threshold=0.5)
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
    knn._approximate.nprobe = knn._approximate.nlist
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
    original = KNNClassifier._build_approximate

    def held_build(self, snapshot, generation):
        release.wait(30)
        original(self, snapshot, generation)

    monkeypatch.setattr(KNNClassifier, "_build_approximate", held_build)
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
    assert len(knn) == 1205 and knn._approximate.ntotal == 1205


def test_a_build_overtaken_by_a_removal_is_discarded(monkeypatch):
    import threading

    release = threading.Event()
    original = KNNClassifier._build_approximate
    monkeypatch.setattr(
        KNNClassifier, "_build_approximate", lambda self, *args: (release.wait(30), original(self, *args))
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

    from teachable import knn as knn_module

    with pytest.raises(KNNError, match="no GPU"):
        KNNClassifier(8, use_gpu=True)
    assert KNNClassifier(8).use_gpu is False

    moved = []
    monkeypatch.setattr(knn_module, "gpu_count", lambda: 1)
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

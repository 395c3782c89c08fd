"""A project of 100,000 examples: saved and loaded as a real file, answered by the approximate index with the
exact index's neighbours (recall >= 0.99) and labels. The vectors lie on the manifold of real embeddings of
augmented photo crops (see scale_data.py). Speed is measured in benchmarks/bench_scale.py, not asserted here."""

import numpy as np

from teachable.frames import encode_jpeg
from teachable.knn import KNNClassifier
from teachable.project import Project

from .scale_data import embed_all, manifold_vectors, real_crops

EXAMPLES = 100_000


def test_a_100k_project_loads_and_predicts_like_the_exact_index(backbone, tmp_path):
    crops, photos = real_crops(200)
    vectors, labels = manifold_vectors(embed_all(backbone, crops), photos, EXAMPLES)
    project = Project.for_backbone(backbone, sorted(set(labels)))
    thumbnail = encode_jpeg(crops[0][::4, ::4])
    for name in project.classes:
        rows = [i for i, label in enumerate(labels) if label == name]
        project.add_examples(name, vectors[rows], [thumbnail] * len(rows), source="generated")
    path = project.save(tmp_path / "large.zip")

    loaded = Project.load(path, backbone=backbone)
    assert len(loaded) == EXAMPLES and loaded.counts() == project.counts()
    np.testing.assert_array_equal(loaded.embeddings, project.embeddings)
    exact = KNNClassifier(loaded.classifier.dim, approximate_from=None)
    exact.add(loaded.embeddings, list(loaded.classifier.labels))

    held_out, _ = real_crops(60, seed=1)
    queries = embed_all(backbone, held_out)
    loaded.predict(queries[0], 5)  # the first query starts the background build
    assert loaded.classifier.wait_for_index(timeout=300) == "ivf"
    truth, found = exact.search(queries, 10)[1], loaded.classifier.search(queries, 10)[1]
    recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found)])
    assert recall >= 0.99, recall
    for query in queries:
        assert loaded.predict(query, 5).label == exact.predict(query, 5, classes=tuple(loaded.classes)).label

"""The data coach, the class summary and the unit view, on planted data where the right answer is known."""

import numpy as np
import pytest

from teachable.coach import review
from teachable.frames import decode_image, encode_jpeg
from teachable.knn import KNNClassifier
from teachable.session import Session, SessionError
from teachable.summary import class_summary, compare_classes, top_examples

from .conftest import photo, views


def clusters(seed=0, per_class=12, dim=32, names=("cup", "hand", "nothing"), spread=0.3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(names), dim))
    vectors = np.concatenate([c + spread * rng.normal(size=(per_class, dim)) for c in centres]).astype(np.float32)
    labels = [name for name in names for _ in range(per_class)]
    return vectors, labels


def classifier(vectors, labels):
    knn = KNNClassifier(vectors.shape[1])
    knn.add(vectors, labels)
    return knn


def kinds(result):
    return [hint.kind for hint in result.hints]


def test_clean_data_gets_no_example_hints():
    result = review(classifier(*clusters()), ["cup", "hand", "nothing"])
    assert result.evaluation.accuracy == 1.0
    assert not {"mislabelled", "outlier", "duplicate", "overlap"} & set(kinds(result))


def test_planted_mislabelled_example_is_flagged_with_its_real_class():
    vectors, labels = clusters()
    labels[3] = "hand"  # a cup recorded into "hand"
    result = review(classifier(vectors, labels), ["cup", "hand", "nothing"])
    (hint,) = [h for h in result.hints if h.kind == "mislabelled"]
    assert hint.examples == (3,) and hint.move_to == "cup" and hint.fix == "move"
    assert 3 in result.mistakes


def test_planted_near_duplicate_is_flagged():
    vectors, labels = clusters()
    vectors = np.concatenate([vectors, vectors[5:6] * 1.0001])
    labels = labels + [labels[5]]
    result = review(classifier(vectors, labels), ["cup", "hand", "nothing"])
    (hint,) = [h for h in result.hints if h.kind == "duplicate"]
    assert hint.examples == (len(labels) - 1,) and hint.fix == "remove"


def test_planted_outlier_is_flagged():
    vectors, labels = clusters()
    rng = np.random.default_rng(9)
    vectors = np.concatenate([vectors, rng.normal(size=(1, vectors.shape[1])).astype(np.float32) * 5])
    labels = labels + ["cup"]
    result = review(classifier(vectors, labels), ["cup", "hand", "nothing"])
    assert any(h.kind == "outlier" and h.examples == (len(labels) - 1,) for h in result.hints)


def test_planted_overlapping_classes_are_reported():
    rng = np.random.default_rng(3)
    vectors, labels = clusters()
    # "mug" is drawn from the same cloud as "cup": the two overlap.
    cup_centre = vectors[:12].mean(axis=0)
    mug = (cup_centre + 0.3 * rng.normal(size=(12, vectors.shape[1]))).astype(np.float32)
    result = review(
        classifier(np.concatenate([vectors, mug]), labels + ["mug"] * 12), ["cup", "hand", "nothing", "mug"]
    )
    overlaps = [h for h in result.hints if h.kind == "overlap"]
    assert len(overlaps) == 1 and "'cup' and 'mug'" in overlaps[0].message
    assert not any("'hand'" in h.message for h in overlaps)


def test_too_few_imbalance_and_background_hints():
    vectors, labels = clusters(per_class=12)
    keep = [i for i, label in enumerate(labels) if label != "hand" or i < 15]  # 3 "hand" examples
    result = review(classifier(vectors[keep], [labels[i] for i in keep]), ["cup", "hand", "nothing", "empty"])
    messages = " | ".join(f"{h.kind}: {h.message}" for h in result.hints)
    assert "too_few: 'hand' has only 3 examples" in messages and "too_few: 'empty' has only 0" in messages
    assert "imbalance: 'cup' has 12 examples and 'hand' only 3" in messages
    # A class whose examples sit right next to the "nothing" frames is learnt from the background.
    vectors, labels = clusters(spread=0.05)
    nothing = vectors[24:]
    vectors[:12] = nothing + 0.02 * np.random.default_rng(4).normal(size=nothing.shape)
    result = review(classifier(vectors, labels), ["cup", "hand", "nothing"])
    backgrounds = [h for h in result.hints if h.kind == "background"]
    assert len(backgrounds) == 1 and "'cup'" in backgrounds[0].message


def test_class_summary_ranks_a_planted_channel_first():
    rng = np.random.default_rng(5)
    means = rng.random((60, 40)).astype(np.float32)
    labels = ["a"] * 20 + ["b"] * 20 + ["c"] * 20
    means[:20, 17] += 1.5  # channel 17 fires on "a" only
    means[20:40, 3] += 1.5  # channel 3 on "b"
    means[:40, 30] += 1.5  # channel 30 on both "a" and "b"
    summary = class_summary(means, labels)
    assert summary["a"][0][0] == 17 and summary["b"][0][0] == 3
    compared = compare_classes(means, labels, "a", "b")
    assert compared["shared"][0][0] == 30 and compared["a"][0][0] == 17 and compared["b"][0][0] == 3


def test_top_examples_are_the_true_top():
    maxima = np.random.default_rng(6).random((50, 8))
    assert top_examples(maxima, 2, 5) == list(np.argsort(-maxima[:, 2])[:5])
    with pytest.raises(ValueError, match="out of range"):
        top_examples(maxima, 8)


@pytest.fixture
def session(backbone):
    session = Session(backbone, ("cat", "coffee"))
    for label, name, seed in [("cat", "chelsea", 1), ("coffee", "coffee", 2)]:
        squares = [backbone.prepare(v) for v in views(photo(name), 6, seed)]
        session.project.add_examples(label, backbone.embed(np.stack(squares)), [encode_jpeg(s) for s in squares])
    return session


def test_session_fixes_a_mislabelled_example_and_accuracy_rises(session):
    session.project.move_example(0, "coffee")  # a cat recorded as coffee
    before = session.insights.review()
    (hint,) = [h for h in before.hints if h.kind == "mislabelled"]
    assert hint.examples == (0,) and hint.move_to == "cat"
    assert "Moved 1 example to 'cat'" in session.edits.apply_hint(hint)
    after = session.insights.review()
    assert after.evaluation.accuracy > before.evaluation.accuracy and after.evaluation.accuracy == 1.0


def test_session_unit_view_returns_the_true_top_examples_with_heat_maps(session, backbone):
    channel = 7
    views_ = session.insights.unit_view(channel, top=4)
    squares = np.stack([backbone.prepare(decode_image(e.thumbnail)) for e in session.project.examples])
    maxima = backbone.run(squares, [session.grid_tap])[session.grid_tap][:, channel].amax(dim=(1, 2)).numpy()
    assert [row for row, _ in views_] == list(np.argsort(-maxima)[:4])
    assert all(image.shape == (224, 224, 3) for _, image in views_)
    with pytest.raises(SessionError, match="out of range"):
        session.insights.unit_view(999)


def test_session_class_summary_and_compare(session):
    summary = session.insights.class_summary(top=5)
    assert set(summary) == {"cat", "coffee"} and all(len(v) == 5 for v in summary.values())
    assert summary["cat"][0][1] > 0
    compared = session.insights.compare("cat", "coffee")
    assert set(compared) == {"shared", "cat", "coffee"}
    with pytest.raises(SessionError):
        session.insights.compare("cat", "cat")


def test_planted_spread_out_class_is_reported_and_tight_ones_are_not():
    rng = np.random.default_rng(8)
    tight, labels = clusters(seed=8, per_class=12, names=("cup", "hand"), spread=0.2)
    wide = rng.normal(size=(12, tight.shape[1])).astype(np.float32) * 3 + rng.normal(size=tight.shape[1])
    result = review(classifier(np.concatenate([tight, wide]), labels + ["animals"] * 12), ["cup", "hand", "animals"])
    spread = [hint for hint in result.hints if hint.kind == "spread"]
    assert len(spread) == 1 and "'animals' is spread out" in spread[0].message
    assert spread[0].fix is None and all(labels_row >= 24 for labels_row in spread[0].examples)
    clean = review(classifier(tight, labels), ["cup", "hand"])
    assert "spread" not in kinds(clean)


def test_a_whole_take_recorded_into_the_wrong_class_is_flagged():
    """Frames of one hold are each other's nearest examples; only with the take left out do the hints see the class
    they look like."""
    vectors, labels = clusters()
    rng = np.random.default_rng(3)
    hand_like = vectors[12] + 0.01 * rng.normal(size=(4, vectors.shape[1])).astype(np.float32)
    flagged = {}
    one_take = list(range(36)) + [36] * 4  # every other example a take of its own
    for rule, takes in (("alone", None), ("take", one_take)):
        knn = KNNClassifier(vectors.shape[1])
        knn.add(np.concatenate([vectors, hand_like]), labels + ["cup"] * 4, takes)
        hints = review(knn, ["cup", "hand", "nothing"]).hints
        flagged[rule] = {row for h in hints if h.kind == "mislabelled" and h.move_to == "hand" for row in h.examples}
    assert flagged["alone"] == set()
    assert flagged["take"] == {36, 37, 38, 39}

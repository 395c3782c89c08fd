"""The live views: embedding map and activation grid."""

import threading

import numpy as np
import pytest

import teachable.projection as projection
from teachable.activations import attribution_map, cell_of_pixel, factor_grid, icon_grid
from teachable.frames import encode_jpeg
from teachable.knn import normalise
from teachable.projection import EmbeddingMap, align, fit_layout, place
from teachable.session import Session

from .conftest import photo, views


def test_place_is_the_similarity_weighted_mean():
    xy = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    sims = np.array([0.5, 0.25, 0.25])
    np.testing.assert_allclose(place(xy, sims), [0.25, 0.25])
    np.testing.assert_allclose(place(xy, np.array([0.9, -0.3, 0.0])), [0.0, 0.0])  # negatives weigh nothing


def test_live_point_is_the_weighted_mean_of_its_neighbours(backbone):
    session = Session(backbone, ("cat", "coffee"))
    for label, name, seed in [("cat", "chelsea", 1), ("coffee", "coffee", 2)]:
        squares = [backbone.prepare(v) for v in views(photo(name), 4, seed)]
        session.project.add_examples(label, backbone.embed(np.stack(squares)), [encode_jpeg(s) for s in squares])
    session.views.positions()
    session.map.wait()
    result = session.step(photo("chelsea"))
    positions = session.views.positions()
    rows = [n.index for n in result.prediction.neighbours]
    weights = np.array([n.similarity for n in result.prediction.neighbours])
    expected = (weights[:, None] * positions[rows]).sum(0) / weights.sum()
    np.testing.assert_allclose(result.map_point, expected)


def test_refit_never_blocks_step(backbone, monkeypatch):
    release, started = threading.Event(), threading.Event()
    real_fit = projection.fitted_layout

    def slow_fit(*args, **kwargs):
        started.set()
        assert release.wait(30)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(projection, "fitted_layout", slow_fit)
    session = Session(backbone)
    session.edits.start_recording("Class 1")
    session.step(photo("coffee"), now=0.0)  # first example: the map asks for a fit, which now hangs
    assert started.wait(30)
    for i in range(1, 4):  # steps go on while the fit is stuck
        result = session.step(photo("coffee"), now=float(i))
        assert result.map_point is not None and session.map.fitting
    assert session.map.version == 0
    release.set()
    session.map.wait(30)
    assert session.map.version >= 1 and not session.map.fitting


def test_layouts_pca_below_umap_threshold_and_alignment_removes_rotation():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(10, 32)).astype(np.float32)
    layout = fit_layout(vectors, "umap")  # too few for UMAP: PCA
    np.testing.assert_allclose(layout, fit_layout(vectors, "pca"))
    assert np.abs(layout).max() == pytest.approx(1.0)
    angle = 1.1
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = 0.5 * layout @ rotation + 3.0
    np.testing.assert_allclose(align(moved, layout), layout, atol=1e-6)


@pytest.mark.parametrize("copies", [3, 15])
def test_identical_examples_share_a_position_and_classes_stay_apart(copies):
    rng = np.random.default_rng(2)
    distinct = rng.normal(size=(25, 16)).astype(np.float32)
    vectors = np.repeat(distinct, copies, axis=0)[: 25 * copies]
    layout = fit_layout(vectors, "umap")
    assert np.isfinite(layout).all()
    groups = layout.reshape(25, copies, 2)
    np.testing.assert_array_equal(groups, np.repeat(groups[:, :1], copies, axis=1))
    assert len(np.unique(groups[:, 0], axis=0)) == 25


def test_umap_layout_keeps_classes_apart_and_the_map_aligns_refits():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, 64)) * 3
    vectors = np.concatenate([c + rng.normal(size=(15, 64)) for c in centres]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    embedding_map = EmbeddingMap()
    embedding_map.request(list(range(45)), vectors)
    embedding_map.wait(120)
    first = embedding_map.positions(list(range(45)), vectors)
    labels = np.repeat(np.arange(3), 15)
    centroids = np.stack([first[labels == i].mean(0) for i in range(3)])
    spread = max(first[labels == i].std(0).max() for i in range(3))
    assert min(np.linalg.norm(centroids[i] - centroids[j]) for i in range(3) for j in range(i)) > 2 * spread
    # One more example: the refit is the fresh layout aligned to the old one over the shared examples, and no
    # rotation, reflection or rescaling of it lies closer to the old layout.
    extra = vectors[:1] + 0.01
    grown = np.concatenate([vectors, extra / np.linalg.norm(extra)])
    embedding_map.request(list(range(46)), grown)
    embedding_map.wait(120)
    assert embedding_map.version == 2
    second = embedding_map.positions(list(range(46)), grown)
    np.testing.assert_allclose(second, align(fit_layout(grown), first, list(range(45))))
    residual = np.linalg.norm(second[:45] - first)
    raw = fit_layout(grown)[:45]
    for angle in np.linspace(0, 2 * np.pi, 12):
        turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        for mirror in (np.eye(2), np.diag([1, -1])):
            candidate = raw @ turn @ mirror
            candidate = candidate - candidate.mean(0) + first.mean(0)
            assert residual <= np.linalg.norm(candidate - first) + 1e-9


def test_grid_cells_follow_the_tap_geometry(backbone):
    """A change in one 16x16 patch of the input changes the matching 14x14 cell most."""
    side = backbone.tap(backbone.grid_tap).grid_size(backbone.input_size)
    stride = backbone.input_size // side
    base = backbone.prepare(photo("coffee"))
    reference = backbone.run(base[None], [backbone.grid_tap])[backbone.grid_tap][0].numpy()
    for row, column in [(3, 4), (10, 9), (7, 1)]:
        changed = base.copy()
        changed[row * stride : (row + 1) * stride, column * stride : (column + 1) * stride] = [0, 255, 0]
        activation = backbone.run(changed[None], [backbone.grid_tap])[backbone.grid_tap][0].numpy()
        difference = np.linalg.norm(activation - reference, axis=0)
        assert np.unravel_index(difference.argmax(), difference.shape) == (row, column)
        assert cell_of_pixel(row * stride + 3, column * stride + 3, backbone.input_size, side) == (row, column)


def test_icon_grid_shape_and_cell_mapping():
    from teachable.activations import GridIcons

    channels, side, cell = 6, 14, 8
    icons = np.stack([np.full((cell, cell, 3), 40 * i, np.uint8) for i in range(channels)])
    grid_icons = GridIcons("test", "tap", np.eye(channels, dtype=np.float32), icons, tuple(map(str, range(channels))))
    activation = np.zeros((channels, side, side), np.float32)
    activation[0] = 1.0
    activation[:, 2, 5] = 0
    activation[4, 2, 5] = 1.0  # cell (2, 5) points along direction 4
    image, best = icon_grid(activation, grid_icons, np.zeros((224, 224, 3), np.uint8), cell_px=cell)
    assert image.shape == (side * cell, side * cell, 3) and best.shape == (side, side)
    assert best[2, 5] == 4 and (np.delete(best.ravel(), 2 * side + 5) == 0).all()
    assert (image[2 * cell : 3 * cell, 5 * cell : 6 * cell] == 160).all()


def test_factor_grid_is_warm_started(backbone):
    square = backbone.prepare(photo("astronaut"))
    activation = backbone.run(square[None], [backbone.grid_tap])[backbone.grid_tap][0].numpy()
    image, factors = factor_grid(activation, square)
    assert image.shape == square.shape and factors.shape == (4, activation.shape[0])
    again, factors_again = factor_grid(activation, square, previous=factors)
    # Same frame, warm start: the factors stay the same groups (each matches its old self best).
    cosine = (factors / np.linalg.norm(factors, axis=1, keepdims=True)) @ (
        factors_again / np.linalg.norm(factors_again, axis=1, keepdims=True)
    ).T
    assert (cosine.argmax(axis=1) == np.arange(4)).all()


def test_attribution_puts_mass_on_the_half_of_the_predicted_class(backbone):
    cat, coffee = backbone.prepare(photo("chelsea")), backbone.prepare(photo("coffee"))
    cat_vectors = backbone.embed(np.stack([backbone.prepare(v) for v in views(photo("chelsea"), 4, 5)]))
    coffee_vectors = backbone.embed(np.stack([backbone.prepare(v) for v in views(photo("coffee"), 4, 6)]))
    half = backbone.input_size // 2
    for left, right, vectors in [(cat, coffee, cat_vectors), (coffee, cat, coffee_vectors)]:
        frame = np.concatenate([left[:, :half], right[:, half:]], axis=1)
        attribution = np.maximum(attribution_map(backbone, frame, vectors), 0)
        columns = attribution.shape[1] // 2
        assert attribution[:, :columns].sum() > attribution[:, columns:].sum()
    before = {k: v.clone() for k, v in backbone.model.state_dict().items()}
    assert all(not p.requires_grad and p.grad is None for p in backbone.model.parameters())
    assert all((before[k] == v).all() for k, v in backbone.model.state_dict().items())


@pytest.fixture
def small_session(backbone):
    from teachable.webapp import load_icons

    session = Session(backbone, ("cat", "coffee"), icons=load_icons(backbone))
    for label, name, seed in [("cat", "chelsea", 1), ("coffee", "coffee", 2)]:
        squares = [backbone.prepare(v) for v in views(photo(name), 12, seed)]
        session.project.add_examples(label, backbone.embed(np.stack(squares)), [encode_jpeg(s) for s in squares])
    return session


def test_activation_atlas_cells_show_the_icon_of_their_mean_vector(small_session):
    atlas = small_session.insights.atlas()
    grid = atlas.counts.shape[0]
    assert atlas.image.shape == (grid * atlas.cell_px, grid * atlas.cell_px, 3)
    assert atlas.counts.sum() == 24 * 16  # 16 vectors from each of the 24 examples
    occupied = atlas.directions >= 0
    assert occupied.sum() >= 4 and ((atlas.counts >= 3) == occupied).all()
    assert set(atlas.majority[occupied]) == {0, 1}  # both classes own some cells
    assert small_session.insights.atlas() is atlas  # cached while the examples are unchanged
    small_session.project.remove_examples([0])
    assert small_session.insights.atlas() is not atlas


def test_reembedding_gives_way_to_live_frames_and_runs_flat_out_alone(small_session):
    """24 examples in two batches: with someone's frame just run, the first batch is followed by a rest three
    times its length (the work's share is a quarter); with nobody streaming, none."""
    from teachable.pacing import Pacer

    rests = []
    # Frames within the last ten minutes count as streaming here, however long this machine takes for a batch.
    small_session.pacer = small_session.frames.pacer = Pacer(share=0.25, recent=600, rest=rests.append)
    small_session.step(photo("chelsea"))  # a live frame, marked on the shared pacer
    small_session.set_embedding_tap("blocks.6")
    assert len(rests) == 1 and rests[0] > 0
    rests.clear()
    small_session.pacer._last_frame = -float("inf")  # nobody has streamed for a while
    small_session.set_embedding_tap("blocks.5")
    assert rests == []


def test_embedding_tap_change_reembeds_and_keeps_predicting(small_session):
    frame = photo("chelsea")
    assert small_session.step(frame).label == "cat"
    message = small_session.set_embedding_tap("blocks.6")
    assert "Re-embedded 24 examples at blocks.6 (320-d)" in message
    assert small_session.project.tap == "blocks.6" and small_session.project.embeddings.shape == (24, 320)
    result = small_session.step(frame)
    assert result.label == "cat" and result.map_point is not None
    # The grid layer can move too; the icons mode needs icons for it, so it gives way to factors.
    small_session.views.set_grid_tap("blocks.3")
    assert small_session.grid_mode == "factors"
    assert small_session.step(frame).grid_activation.shape == (80, 14, 14)
    with pytest.raises(Exception, match="no icons"):
        small_session.views.set_grid_mode("icons")
    small_session.set_embedding_tap("blocks.2")  # earlier than the grid: attribution is impossible, and says so
    with pytest.raises(Exception, match="after the grid layer"):
        small_session.views.set_grid_mode("attribution")


def test_project_at_another_tap_round_trips(small_session, backbone):
    from teachable.project import Project

    small_session.set_embedding_tap("head")
    loaded = Project.load(small_session.project_bytes(), backbone=backbone)
    assert loaded.tap == "head"
    np.testing.assert_array_equal(loaded.embeddings, small_session.project.embeddings)


# ----------------------------------------------------------------- many examples
def test_large_sets_are_laid_out_from_a_sample_and_the_rest_placed():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(3, 32)) * 3
    vectors = np.concatenate([c + rng.normal(size=(200, 32)) for c in centres]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    order = np.lexsort(vectors.T[::-1])  # fit_layout works on the distinct vectors, which np.unique sorts
    vectors = vectors[order]
    layout = fit_layout(vectors, "pca", sample=120)
    chosen = np.sort(np.random.default_rng(0).choice(600, 120, replace=False))
    np.testing.assert_allclose(layout[chosen], fit_layout(vectors[chosen], "pca"))  # the sample is the fit
    others = np.setdiff1d(np.arange(600), chosen)
    row = others[7]
    similarities = vectors[chosen] @ vectors[row]
    top = np.argsort(-similarities)[:10]
    np.testing.assert_allclose(layout[row], place(layout[chosen][top], similarities[top]), atol=1e-5)
    labels = np.repeat(np.arange(3), 200)[order]
    means = np.stack([layout[labels == c].mean(axis=0) for c in range(3)])
    spread = max(np.linalg.norm(layout[labels == c] - means[c], axis=1).mean() for c in range(3))
    assert min(np.linalg.norm(means[a] - means[b]) for a, b in [(0, 1), (0, 2), (1, 2)]) > 2 * spread


def test_crowded_map_draws_a_sample_over_the_density_of_all(backbone):
    from teachable.project import Project
    from teachable.views import MAX_DRAWN_POINTS, class_colour, density_image, map_points_html

    rng = np.random.default_rng(4)
    project = Project.for_backbone(backbone, ["left", "right"])
    thumbnail = encode_jpeg(np.zeros((8, 8, 3), np.uint8))
    count = MAX_DRAWN_POINTS * 2
    project.add_examples("left", rng.normal(size=(count // 2, 1280)), [thumbnail] * (count // 2))
    project.add_examples("right", rng.normal(size=(count // 2, 1280)), [thumbnail] * (count // 2))
    positions = np.concatenate([rng.uniform(-1, -0.2, (count // 2, 2)), rng.uniform(0.2, 1, (count // 2, 2))])
    html = map_points_html(project, positions, "pca", fitting=False)
    assert html.count("<circle") == MAX_DRAWN_POINTS and "tm-density" in html
    assert f"map of {count:,} examples, {MAX_DRAWN_POINTS:,} drawn" in html

    from teachable.views.embedding_map import _to_svg

    image = density_image(
        _to_svg(positions), [0] * (count // 2) + [1] * (count // 2), [class_colour(0), class_colour(1)]
    )
    size = image.shape[0]
    left_cell, right_cell, empty_cell = (
        image[int(size * 0.7), int(size * 0.2)],
        image[int(size * 0.2), int(size * 0.8)],
        image[int(size * 0.2), int(size * 0.2)],
    )
    assert left_cell[3] > 100 and right_cell[3] > 100 and empty_cell[3] == 0
    assert tuple(left_cell[:3]) == tuple(int(class_colour(0)[i : i + 2], 16) for i in (1, 3, 5))
    assert tuple(right_cell[:3]) == tuple(int(class_colour(1)[i : i + 2], 16) for i in (1, 3, 5))


def test_classification_view_is_bounded_and_shows_mistakes_first():
    """50 classes of 40 examples: the review inlined all 2,000 pictures (20 MB). Now at most 400, every column keeps
    its mistakes first and says how many it leaves out."""
    from types import SimpleNamespace

    from teachable.knn import Evaluation
    from teachable.project import Project
    from teachable.views import CLASSIFICATION_VIEW_EXAMPLES, evaluation_html

    names = [f"class {i}" for i in range(50)]
    project = Project("efficientnet_lite0", "pool", 8, classes=names)
    thumbnail = encode_jpeg(np.full((32, 32, 3), 100, np.uint8))
    rng = np.random.default_rng(0)
    for name in names:
        project.add_examples(name, rng.random((40, 8), dtype=np.float32), [thumbnail] * 40)
    true = tuple(example.label for example in project.examples)
    predicted = list(true)
    predicted[39] = "class 1"  # the last example of class 0, taken for class 1: a mistake at the end of its class
    confusion = np.zeros((50, 50), int)
    for t, p in zip(true, predicted):
        confusion[names.index(t), names.index(p)] += 1
    evaluation = Evaluation(tuple(names), true, tuple(predicted), confusion, tuple(rng.uniform(0.5, 1, 2000)))
    html = evaluation_html(SimpleNamespace(evaluation=evaluation), project)

    assert html.count('class="tm-example') <= CLASSIFICATION_VIEW_EXAMPLES
    assert len(html) < 2_000_000
    assert 'data-row="39"' in html and html.count("tm-mistake") == 1
    column = html.split("taken for class 1</div>")[1].split('<div class="tm-column">')[0]
    assert column.startswith('<figure class="tm-example tm-mistake" data-row="39"')  # the mistake leads its column
    assert "+33 more, all taken right" in column  # 41 taken for class 1, 8 shown
    assert "+32 more, all taken right" in html.split("taken for class 2</div>")[1]


def test_the_map_shows_each_class_reach_and_the_examples_outside_it():
    """Each class's examples inside its reach are shaded together; an example a frame like which would come out
    "not sure" (its own leave-one-out score under the boundary) is drawn hollow, and the legend says what that means."""
    from teachable.project import Project
    from teachable.views import map_points_html, outside_reach

    rng = np.random.default_rng(1)
    project = Project("efficientnet_lite0", "pool", 64, classes=["cup", "hand"])
    thumbnail = encode_jpeg(np.full((32, 32, 3), 100, np.uint8))
    for name, centre in [("cup", rng.random(64)), ("hand", rng.random(64))]:
        tight = np.abs(centre + 0.05 * rng.normal(size=(12, 64)))
        project.add_examples(name, tight.astype(np.float32), [thumbnail] * 12)
    far = np.zeros((1, 64), np.float32)
    far[0, :3] = 1.0  # a cup unlike the other cups
    project.add_examples("cup", far, [thumbnail])
    outside = outside_reach(project)
    assert outside.tolist() == [False] * 24 + [True]

    positions = rng.uniform(-1, 1, (25, 2))
    html = map_points_html(project, positions, "pca", False)
    assert html.count('class="tm-reach"') == 2
    assert html.count('class="tm-outside"') == 1 and 'data-index="24"><title>cup #24: outside' in html
    assert "tm-map-legend" in html


def test_a_view_recorded_as_one_take_of_near_copies_is_outside_the_reach_it_would_be_outside_alone():
    """Near-copies of an odd view, recorded in one take, keep each other inside the reach when each is scored
    alone; left out with its take, the view is outside, as a single example of it would be."""
    from teachable.project import Project
    from teachable.views import outside_reach

    rng = np.random.default_rng(2)
    thumbnail = encode_jpeg(np.full((32, 32, 3), 100, np.uint8))
    odd = np.zeros(64, np.float32)
    odd[:3] = 1.0
    outside = {}
    for rule, take in (("alone", lambda project: None), ("take", lambda project: project.new_take())):
        names = ["cup", "hand", "pen", "mug", "key", "fork"]  # enough examples that the odd take is under a fifth
        project = Project("efficientnet_lite0", "pool", 64, classes=names)
        for name in names:
            tight = np.abs(rng.random(64) + 0.05 * rng.normal(size=(12, 64)))
            project.add_examples(name, tight.astype(np.float32), [thumbnail] * 12)
        copies = (odd * np.abs(1 + 0.01 * rng.normal(size=(16, 64)))).astype(np.float32)
        project.add_examples("cup", copies, [thumbnail] * 16, take=take(project))
        outside[rule] = outside_reach(project)
    assert not outside["alone"][-16:].any()
    assert outside["take"][-16:].all() and not outside["take"][12:72].any()  # the odd view, and no other class


def test_map_after_a_still_picture_spreads_out_and_stays_spread():
    """A first fit of identical frames puts them on one spot; later fits must not be aligned (scaled) onto it."""
    from teachable.projection import spread

    rng = np.random.default_rng(7)
    still = np.tile(normalise(rng.normal(size=(1, 32))), (10, 1))
    embedding_map = EmbeddingMap(method="pca")
    embedding_map.request(list(range(10)), still)
    embedding_map.wait()
    assert spread(embedding_map.positions(list(range(10)), still)) == 0
    assert embedding_map.shown_method == "none"
    vectors = np.concatenate([still, normalise(rng.normal(size=(20, 32)))])
    for count in (20, 30):  # two refits in a row, each aligned to the one before
        embedding_map.request(list(range(count)), vectors[:count])
        embedding_map.wait()
        assert spread(embedding_map.positions(list(range(count)), vectors[:count])) > 0.2
    assert embedding_map.shown_method == "pca"

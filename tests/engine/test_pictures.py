"""The labs' pictures show what they are meant to teach (issue 18, item 2), checked on the figures.

Each test draws with the reference (matplotlib's Agg backend) and checks what a student must be
able to see: one panel per thing shown and no empty panel, the data of each panel being the
quantity named in its title, and for Lab 5's PNG writer, labels that can be read back from the
pixels. The pictures were also reviewed as rendered images (see /work/notes/pics.md).
"""

from __future__ import annotations

import numpy as np
import pytest

from grader.isolation.loading import load_package

pytestmark = pytest.mark.usefixtures("solutions")


@pytest.fixture(scope="module")
def plt():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    yield pyplot
    pyplot.close("all")


def _sub(solutions, lab: str, module: str):
    package = load_package(solutions, lab)
    return package, __import__(f"{package.__name__}.{module}", fromlist=[module])


def _drawn(ax) -> int:
    """How many data artists (lines, filled areas, images) the panel holds."""
    return len(ax.lines) + len(ax.collections) + len(ax.images)


def _assert_no_empty_panel(fig) -> None:
    fig.canvas.draw()  # lays the figure out as saving it would; raises on a broken figure
    empty = [ax.get_title() or str(i) for i, ax in enumerate(fig.axes) if _drawn(ax) == 0]
    assert not empty, f"empty panels: {empty}"


# --- Lab 2: what BatchNorm does ------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab2_runs():
    from grader import paths
    from grader.data.mnist import load_mnist

    if not paths.solutions_dir().is_dir():
        pytest.skip("no solutions/ (student release)")
    _, pictures = _sub(paths.solutions_dir(), "lab2", "pictures")
    data = load_mnist()
    runs = pictures.experiment(data.train_images, data.train_labels, lrs=(0.1, 2.0), steps=150, seed=0)
    return pictures, runs, data


def test_lab2_experiment_shows_what_the_handout_says(lab2_runs) -> None:
    """At lr 2.0 the run without BatchNorm stays at a constant guess, the one with it learns; the
    ReLU inputs with BatchNorm stay of order 1, and without it most of them end below 0."""
    _, runs, _ = lab2_runs
    without, with_bn = runs[(2.0, False)], runs[(2.0, True)]
    assert np.mean(without.losses[-30:]) > 2.0, np.mean(without.losses[-30:])
    assert np.mean(with_bn.losses[-30:]) < 1.0, np.mean(with_bn.losses[-30:])
    for bands in with_bn.bands:
        b = np.array(bands)
        assert np.all(np.abs(b[:, [0, 4]]) < 3), "with BatchNorm the 5-95th percentiles stay within (-3, 3)"
    assert np.array(without.bands[0])[-1, 3] < 0, "without BatchNorm at lr 2 most first-layer ReLU inputs end < 0"


def test_lab2_pictures_have_a_panel_per_layer_and_run(lab2_runs, plt) -> None:
    pictures, runs, data = lab2_runs
    fig = pictures.draw_activations(plt, runs, lr=2.0)
    assert len(fig.axes) == 2 * 2  # (without, with BatchNorm) x 2 hidden layers
    _assert_no_empty_panel(fig)
    titles = [ax.get_title() for ax in fig.axes]
    assert sum("without BatchNorm" in t for t in titles) == 2 and sum("with BatchNorm" in t for t in titles) == 2
    fig = pictures.draw_losses(plt, runs)
    assert [ax.get_title() for ax in fig.axes] == ["lr 0.1", "lr 2"]
    for ax in fig.axes:
        assert [line.get_label() for line in ax.lines[:2]] == ["without BatchNorm", "with BatchNorm"]
    _assert_no_empty_panel(fig)
    fig = pictures.draw_running_stats(plt, runs[(0.1, True)], data.train_images[:2000])
    assert len(fig.axes) == 3
    _assert_no_empty_panel(fig)
    plt.close("all")


def test_lab2_running_statistics_end_at_the_data_statistics(lab2_runs) -> None:
    """What the right panel of the running-statistics picture claims: every feature's running mean
    and variance close to the mean and variance of its input over the data (final weights)."""
    pictures, runs, data = lab2_runs
    run = runs[(0.1, True)]
    bn = next(layer for layer in run.model.layers if type(layer).__name__ == "BatchNorm1d")
    mean, var = pictures.data_statistics(run, data.train_images[:4000])
    assert np.corrcoef(mean, bn.running_mean)[0, 1] > 0.95
    assert np.median(np.abs(bn.running_var / var - 1)) < 0.25
    # and the tracked features: the running statistic follows the batch statistic step by step
    batch, running = np.array(run.batch_mean), np.array(run.running_mean)
    assert np.abs(running[-20:] - batch[-20:]).mean() < np.abs(running[0] - batch[-20:]).mean()


# --- Lab 3: filters without empty panels, feature maps through the network ----------------------


def test_lab3_filters_one_panel_each(solutions, plt) -> None:
    lab3, pictures = _sub(solutions, "lab3", "pictures")
    assert [pictures.grid(n) for n in (8, 10, 16, 3)] == [(1, 8), (2, 8), (2, 8), (1, 3)]
    rng = np.random.default_rng(0)
    for filters in (8, 10):  # 10: the second row is partly unused, and those cells are removed
        model = lab3.Sequential(lab3.Conv2d(1, filters, 3, padding=1, rng=rng), lab3.ReLU())
        fig = pictures.draw_filters(plt, model)
        assert len(fig.axes) == filters
        _assert_no_empty_panel(fig)
        np.testing.assert_array_equal(fig.axes[-1].images[0].get_array(), model.layers[0].weight.data[-1, 0])
    plt.close("all")


def test_lab3_feature_maps_show_every_conv_and_pool_channel(solutions, plt) -> None:
    from grader.data.mnist import load_mnist

    lab3, pictures = _sub(solutions, "lab3", "pictures")
    model = lab3.build_cnn(np.random.default_rng(0))
    image = load_mnist().test_images[0]
    maps = pictures.feature_maps(model, image)
    assert [(name.split(": ")[1], m.shape) for name, m in maps] == [
        ("Conv2d", (8, 28, 28)), ("MaxPool2d", (8, 14, 14)), ("Conv2d", (16, 14, 14)), ("MaxPool2d", (16, 7, 7))]
    fig = pictures.draw_feature_maps(plt, model, image, 7)
    assert len(fig.axes) == 1 + 8 + 8 + 16 + 16  # the digit, then one panel per channel
    _assert_no_empty_panel(fig)
    shapes = [ax.images[0].get_array().shape for ax in fig.axes]
    assert shapes == [(28, 28)] + [(28, 28)] * 8 + [(14, 14)] * 24 + [(7, 7)] * 16
    plt.close("all")


# --- Lab 4: one panel per optimizer -------------------------------------------------------------


def test_lab4_paths_are_small_multiples(solutions, plt) -> None:
    _, plot = _sub(solutions, "lab4", "plot")
    for runs in (plot.QUADRATIC_RUNS, plot.QUADRATIC_RUNS[:5]):
        fig = plot.paths_figure(plt, plot.quadratic(), runs, (-4.0, 3.0), 60, (-5, 5, -4, 4), (0, 0), "q")
        assert len(fig.axes) == len(runs)  # one panel per optimizer, no empty one
        _assert_no_empty_panel(fig)
        for ax, (label, cls, kwargs) in zip(fig.axes, runs, strict=True):
            assert ax.get_title().startswith(label)
            # the panel's path is that optimizer's own, and it is the only path in the panel
            paths = [line for line in ax.lines if len(line.get_xdata()) > 1]
            assert len(paths) == 1
            expected = plot.path(cls, kwargs, plot.quadratic()[1], (-4.0, 3.0), 60)
            np.testing.assert_allclose(paths[0].get_xydata(), expected)
        plt.close("all")


# --- Lab 5: labels and scores readable in the PNG ------------------------------------------------


def _read_text(show, img: np.ndarray, x: int, y: int, n: int) -> str:
    """Reads ``n`` glyphs of the label box at (x, y) back from the pixels (the font, downsampled)."""
    s = show.GLYPH_SCALE
    glyphs = {tuple(v): k for k, v in show._FONT.items()}
    text = ""
    for i in range(n):
        rows = []
        for r in range(5):
            bits = 0
            for c in range(3):
                top, left = y + (r + 1) * s, x + (1 + 4 * i + c) * s
                lit = (img[top:top + s, left:left + s] != show.LABEL_BACKGROUND).any(axis=-1).all()
                bits = bits << 1 | int(lit)
            rows.append(bits)
        text += glyphs.get(tuple(rows), "?")
    return text


def _label_boxes(img: np.ndarray, background) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) of every label box: connected blocks of label-background pixels."""
    from collections import deque

    mask = (img == background).all(axis=-1)
    seen = np.zeros_like(mask)
    boxes = []
    for y, x in zip(*np.nonzero(mask), strict=True):
        if seen[y, x]:
            continue
        queue, ys, xs = deque([(y, x)]), [], []
        seen[y, x] = True
        while queue:
            cy, cx = queue.popleft()
            ys.append(cy)
            xs.append(cx)
            for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    queue.append((ny, nx))
        boxes.append((min(ys), max(ys) + 1, min(xs), max(xs) + 1))

    def inside(a, b) -> bool:  # the hole of a 0, 6, 8 or 9 is a block of its own, inside its label's
        return a != b and b[0] <= a[0] and a[1] <= b[1] and b[2] <= a[2] and a[3] <= b[3]

    return [a for a in boxes if not any(inside(a, b) for b in boxes)]


def test_lab5_labels_and_scores_can_be_read_back(solutions) -> None:
    _, show = _sub(solutions, "lab5", "show")
    assert show.GLYPH_SCALE >= 2 and show.text_size("7")[0] >= 12  # glyphs of at least 10 pixels
    images = np.zeros((2, 64, 64), dtype=np.uint8)
    images[:, 20:40, 20:40] = 255  # a bright digit under the boxes
    box = np.array([18.0, 16.0, 42.0, 44.0])
    near_edge = np.array([0.0, 0.0, 20.0, 20.0])
    truth = [[(box, 7)], [(near_edge, 1)]]
    predicted = [[(box + 1, 7, 0.934)], [(near_edge, 4, 1.0)]]
    scale = 4
    img = show.grid_image(images, truth, predicted, scale=scale, cols=2)
    tile = img[:64 * scale, :64 * scale]
    labels = _label_boxes(tile, show.LABEL_BACKGROUND)
    # the true digit above its box, the prediction (digit and score) below its box, apart
    width = 4 * show.GLYPH_SCALE  # pixels per glyph
    texts = sorted((y0, _read_text(show, tile, x0, y0, (x1 - x0) // width)) for y0, _, x0, x1 in labels)
    assert [t for _, t in texts] == ["7", "7 .93"], texts
    (t_y0, t_y1, *_), (p_y0, *_) = sorted(labels)
    assert t_y1 <= box[1] * scale and p_y0 >= (box[3] + 1) * scale - 1
    # near the canvas edge the labels move inside, whole, and do not cover each other
    edge = img[:64 * scale, 64 * scale + 4:]
    labels = sorted(_label_boxes(edge, show.LABEL_BACKGROUND))
    assert [_read_text(show, edge, x0, y0, (x1 - x0) // (4 * show.GLYPH_SCALE)) for y0, _, x0, x1 in labels] \
        == ["1", "4 1.0"]
    assert labels[0][1] <= labels[1][0]


# --- The notebooks' own grids (labs 1-4): as many panels as there are things to show ---------------


def _run_cell(code: str, plt, **names) -> list:
    """Executes a notebook cell's code with ``names``; returns the figures it drew."""
    from types import SimpleNamespace

    before = set(plt.get_fignums())
    exec(code, {"plt": plt, "np": np, "SimpleNamespace": SimpleNamespace, **names})  # noqa: S102 (our own cell)
    return [plt.figure(n) for n in plt.get_fignums() if n not in before]


def test_notebook_grids_have_no_empty_panel(plt) -> None:
    from types import SimpleNamespace

    from grader.course import notebooks

    rng = np.random.default_rng(0)
    for hidden in (10, 128):  # 10 units: fewer than the 16 cells of a full grid
        model = SimpleNamespace(parameters=lambda h=hidden: [SimpleNamespace(data=rng.normal(size=(784, h)))])
        (fig,) = _run_cell(notebooks._WEIGHTS, plt, model=model)
        assert len(fig.axes) == min(hidden, 16)
        _assert_no_empty_panel(fig)
    labels = rng.integers(0, 10, 100)
    predicted = labels.copy()
    predicted[[3, 17, 40, 41, 99]] += 1  # five mistakes: five panels
    data = SimpleNamespace(test_images=rng.integers(0, 255, (100, 28, 28)), test_labels=labels)
    (fig,) = _run_cell(notebooks._PICTURES, plt, model=object(), predicted=predicted, data=data)
    assert len(fig.axes) == 5
    assert fig.axes[0].get_title() == f"{predicted[3]} (is {labels[3]})"
    _assert_no_empty_panel(fig)
    plt.close("all")


def test_lab5_notebook_draws_labels_that_read_back(solutions, plt) -> None:
    """The notebook's detection picture (drawn through lab5/show.py): each canvas's true digits and
    each detection's digit and score (>= 0.3 only) are in the image, readable."""
    import importlib
    from types import SimpleNamespace

    torch = pytest.importorskip("torch")
    from grader.course import notebooks

    package, show = _sub(solutions, "lab5", "show")
    images = np.zeros((2, 64, 64), dtype=np.uint8)
    test = SimpleNamespace(images=images, boxes=np.array([[10.0, 20.0, 30.0, 44.0], [30.0, 12.0, 50.0, 40.0]]),
                           labels=np.array([7, 2]), image_index=np.array([0, 1]))
    found = [(torch.tensor([[11.0, 21.0, 30.0, 45.0]]), torch.tensor([0.87]), torch.tensor([7])),
             (torch.tensor([[30.0, 12.0, 50.0, 40.0], [0.0, 0.0, 9.0, 9.0]]), torch.tensor([0.64, 0.1]),
              torch.tensor([3, 5]))]
    (fig,) = _run_cell(notebooks._DETECT_DRAW.format(lab=package.__name__), plt, importlib=importlib,
                       test=test, found=found)
    (ax,) = fig.axes
    img = np.asarray(ax.images[0].get_array())
    assert img.shape[:2] == show.grid_image(images, [[], []], [[], []]).shape[:2]
    width = 4 * show.GLYPH_SCALE
    texts = sorted(_read_text(show, img, x0, y0, (x1 - x0) // width)
                   for y0, _, x0, x1 in _label_boxes(img, show.LABEL_BACKGROUND))
    assert texts == ["2", "3 .64", "7", "7 .87"], texts  # the 0.1 detection is left out
    plt.close("all")

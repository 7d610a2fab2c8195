"""Pictures: their pixels, the attention they show, and the files they are saved in."""

import os

import keras
import numpy as np
import pytest
from PIL import Image

from keras_danet import visualize
from keras_danet.dataset_info import SYNTHETIC_SCENES
from tests.conftest import to_numpy
from tests.helpers import attentive_tiny_model

PALETTE = SYNTHETIC_SCENES.palette
NAMES = SYNTHETIC_SCENES.class_names


def _labels():
    labels = np.zeros((20, 30), np.uint8)
    labels[10:, :15] = 1
    labels[10:, 15:] = 3
    labels[0, 0] = 255
    return labels


def test_colours_of_known_regions():
    colors = visualize.colorize(_labels(), PALETTE)
    assert tuple(colors[5, 20]) == PALETTE[0] and tuple(colors[15, 5]) == PALETTE[1]
    assert tuple(colors[15, 25]) == PALETTE[3] and tuple(colors[0, 0]) == (0, 0, 0)


def test_overlay_blends_with_alpha_and_adds_a_legend_of_present_classes():
    image = np.full((20, 30, 3), 100, np.uint8)
    blended = visualize.overlay(image, _labels(), PALETTE, alpha=0.25)
    expected = np.round(0.75 * 100 + 0.25 * np.array(PALETTE[1]))
    np.testing.assert_array_equal(blended[15, 5], expected)
    picture = visualize.overlay_with_legend(image, _labels(), PALETTE, NAMES)
    key = picture[:, 30:]
    colours = {tuple(c) for c in key.reshape(-1, 3)}
    assert PALETTE[0] in colours and PALETTE[1] in colours and PALETTE[3] in colours
    assert PALETTE[2] not in colours  # grass is absent, so not in the legend
    with pytest.raises(ValueError, match="alpha"):
        visualize.overlay(image, _labels(), PALETTE, alpha=2)


def test_saved_pngs_read_back(tmp_path):
    picture = visualize.colorize(_labels(), PALETTE)
    path = visualize.save_png(tmp_path / "deep" / "colors.png", picture)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), picture)
    label_path = visualize.save_label_png(tmp_path / "labels.png", _labels(), PALETTE)
    with Image.open(label_path) as file:
        assert file.mode == "P"
        np.testing.assert_array_equal(np.asarray(file), _labels())  # indices kept
        np.testing.assert_array_equal(np.asarray(file.convert("RGB")), picture)  # colours
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    # Written through a private temporary file, but readable as any file the user writes.
    umask = os.umask(0o022)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


@pytest.fixture(scope="module")
def model():
    return attentive_tiny_model()


def test_position_attention_map_is_a_distribution_over_the_feature_grid(model):
    image = np.random.default_rng(0).uniform(0, 255, (40, 56, 3)).astype("float32")
    attention, cell = visualize.position_attention_map(model, image, (39, 0))
    assert attention.shape == (5, 7) and cell == (4, 0)
    assert attention.sum() == pytest.approx(1.0, abs=1e-5) and attention.min() >= 0
    # The same row as the layer's whole attention matrix.
    probe = keras.Model(model.input, model.get_layer("pam").input)
    features = probe.predict_on_batch(image[None])
    scores = to_numpy(model.get_layer("pam").attention_scores(features))
    np.testing.assert_allclose(attention.ravel(), scores[0, 4 * 7 + 0], atol=1e-6)
    with pytest.raises(ValueError, match="outside"):
        visualize.position_attention_map(model, image, (40, 0))
    # xy=(x, y), as PIL, OpenCV and matplotlib users think of points: the same query.
    by_xy, cell = visualize.position_attention_map(model, image, xy=(0, 39))
    assert cell == (4, 0)
    np.testing.assert_array_equal(by_xy, attention)
    with pytest.raises(ValueError, match="once"):
        visualize.position_attention_map(model, image, (39, 0), xy=(0, 39))


def test_channel_map_and_the_figure(model, tmp_path):
    image = np.random.default_rng(1).uniform(0, 255, (40, 56, 3)).astype("float32")
    channel = visualize.channel_attention_map(model, image, 3)
    probe = keras.Model(model.input, model.get_layer("cam").output)
    np.testing.assert_allclose(channel, probe.predict_on_batch(image[None])[0, :, :, 3], atol=1e-6)
    attention, _ = visualize.position_attention_map(model, image, (20, 28))
    picture = visualize.attention_figure(image, attention, (20, 28), channel, 3, "test")
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
    assert picture.shape[1] > picture.shape[0]  # three panels side by side
    hot = visualize.heatmap(attention, (40, 56))
    assert hot.shape == (40, 56, 3)
    visualize.save_png(tmp_path / "attention.png", picture)
    with pytest.raises(ValueError, match="channel"):
        visualize.channel_attention_map(model, image, 99)


def test_the_figure_keeps_matplotlibs_backend_and_marks_the_uniform_level(model):
    # A notebook's inline backend stays: the figure draws on its own Agg canvas.
    import matplotlib

    image = np.random.default_rng(2).uniform(0, 255, (40, 56, 3)).astype("float32")
    attention, _ = visualize.position_attention_map(model, image, (10, 10))
    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        visualize.attention_figure(image, attention, (10, 10))
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)
    figure = visualize._attention_plot(image, attention, (10, 10), None, None, "")
    [bar] = [axis for axis in figure.axes if axis.get_label() == "<colorbar>"]
    [line] = bar.lines
    assert line.get_ydata()[0] == pytest.approx(1 / 35)  # 5 x 7 feature cells
    low, high = bar.get_ylim()
    assert low <= 1 / 35 <= high < 0.1  # the weights themselves, not rescaled to 0-1

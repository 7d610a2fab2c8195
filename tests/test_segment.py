"""`DANet.segment`: any image a user may have, class maps at its own size, the preset's mode."""

import numpy as np
import pytest
from PIL import Image

from keras_danet import data
from keras_danet.image_input import as_rgb
from keras_danet.inference import slide_logits
from keras_danet.presets import TestSettings
from tests.helpers import attentive_tiny_model


@pytest.fixture(scope="module")
def model():
    return attentive_tiny_model()


@pytest.fixture(scope="module")
def scene():
    return data.synthetic_scenes(1, 40, 56, seed=5)[0][0]


def test_every_form_of_one_image_gives_one_class_map(model, scene, tmp_path):
    path = str(tmp_path / "scene.png")
    Image.fromarray(scene).save(path)
    expected = model.segment(scene)
    assert expected.shape == (40, 56) and expected.dtype == np.uint8
    for form in (
        path,
        Image.open(path),
        scene.astype("float32"),
        scene.astype(np.uint16) * 257,  # 16-bit
        np.concatenate([scene, np.full((40, 56, 1), 255, np.uint8)], -1),  # RGBA
    ):
        np.testing.assert_array_equal(model.segment(form), expected)


def test_lists_batches_and_sizes(model, scene):
    small = scene[:24, :33]
    maps = model.segment([scene, small])
    assert [m.shape for m in maps] == [(40, 56), (24, 33)]
    batch = model.segment(np.stack([scene, scene]))
    assert len(batch) == 2
    np.testing.assert_array_equal(batch[1], maps[0])


def test_grayscale_becomes_three_equal_channels(model, scene):
    gray = scene.mean(-1).astype(np.uint8)
    np.testing.assert_array_equal(as_rgb(gray), np.repeat(gray[:, :, None], 3, -1))
    assert model.segment(gray).shape == (40, 56)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((4, 2, 8, 8, 3)), "expected one image"),
        (np.zeros(10), "expected one image"),
        (np.zeros((8, 8, 2)), "2 channels"),
        (np.full((8, 8, 3), 300, np.int32), "pixels must be 0-255"),
        (np.full((8, 8, 3), np.nan, np.float32), "NaN"),
        (np.array([["a"]]), "must hold numbers"),
        ("no/such/image.png", "No image file"),
    ],
)
def test_bad_images_are_refused_with_the_reason(model, bad, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        model.segment(bad)


def test_the_preset_test_mode_is_used(model, scene):
    model.preset_metadata = {"test_mode": "slide", "slide_crop": [24, 24], "slide_stride": [16, 16]}
    try:
        expected = slide_logits(model, scene, (24, 24), (16, 16)).argmax(-1)
        np.testing.assert_array_equal(model.segment(scene), expected)
        assert TestSettings.of(model).mode == "slide"
        whole = model.segment(scene, mode="whole")
        assert whole.shape == expected.shape
    finally:
        model.preset_metadata = {}


def test_multi_scale_flip_option(model, scene):
    tta = model.segment(scene, multi_scale=True, ratios=(0.75, 1.0))
    assert tta.shape == (40, 56) and tta.max() < 4


def test_probabilities_and_named_masks(model, scene):
    labels = model.segment(scene)
    probabilities = model.segment(scene, output="probabilities")
    assert probabilities.shape == (40, 56, model.num_classes)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(-1), 1, atol=1e-5)
    np.testing.assert_array_equal(probabilities.argmax(-1), labels)
    names = [f"thing {index}" for index in range(model.num_classes)]
    saved = model.preset_metadata
    model.preset_metadata = {**saved, "class_names": names}
    try:
        masks = model.segment(scene, output="masks")
    finally:
        model.preset_metadata = saved
    assert [found["index"] for found in masks] == sorted(np.unique(labels))
    for found in masks:
        index = found["index"]
        assert found["label"] == names[index]
        np.testing.assert_array_equal(found["mask"], labels == index)
        expected = probabilities[..., index][labels == index].mean()
        assert found["score"] == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="output must be one of"):
        model.segment(scene, output="logits")


def test_folders_and_patterns(model, tmp_path):
    images, _ = data.synthetic_scenes(2, 40, 56, seed=6)
    for index, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"scene_{index}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "._scene_0.png").write_bytes(b"macOS' resource fork, not an image")
    paths = [str(tmp_path / "scene_0.png"), str(tmp_path / "scene_1.png")]
    by_folder = model.segment(str(tmp_path))
    assert list(by_folder) == paths  # sorted, images only
    for path, image in zip(paths, images, strict=True):
        np.testing.assert_array_equal(by_folder[path], model.segment(image))
    assert list(model.segment(str(tmp_path / "*_1.png"))) == paths[1:]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="No image file in the folder .*empty"):
        model.segment(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="No image file in the pattern"):
        model.segment(str(tmp_path / "*.jpg"))

"""Images a user may hand to `segment`: each wrong one refused (or warned about) by name."""

import logging
import os

import numpy as np
import pytest
from PIL import Image

from keras_danet import DANet, data
from keras_danet.data import DataError


@pytest.fixture(scope="module")
def model():
    return DANet.from_preset("danet_demo_shapes")


@pytest.fixture(scope="module")
def scene():
    return data.synthetic_scenes(1, 32, 48, seed=4)[0][0]


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((0, 16, 3), np.uint8), "empty image"),
        (np.full((8, 8, 3), np.inf, np.float32), "NaN or infinite"),
        (np.ones((8, 8, 3), bool), r"values from True to True \(bool\)"),
        (np.full((8, 8, 3), -3, np.int16), "pixels must be 0-255"),
        (np.zeros((8, 8, 5)), "5 channels"),
    ],
    ids=["zero-size", "inf", "bool", "negative-integers", "5-channels"],
)
def test_wrong_arrays_are_refused(model, bad, message):
    with pytest.raises(ValueError, match=message):
        model.segment(bad)


@pytest.mark.parametrize(
    "scale, message",
    [
        (1 / 255, "every value within 0-1"),
        (2 / 255, "float values from -1 to 1"),
        (4.0, "float values from 0 to 1020"),
    ],
    ids=["0..1", "-1..1", "above-255"],
)
def test_floats_outside_0_255_are_warned_about(model, scene, caplog, scale, message):
    image = scene.astype("float32") * scale
    if message.startswith("float values from -1"):
        image = image - 1.0
    with caplog.at_level(logging.WARNING, logger="keras_danet"):
        labels = model.segment(image)
    assert labels.shape == (32, 48)
    assert message in caplog.text and "DANet expects 0-255" in caplog.text


@pytest.mark.parametrize(
    "content, message",
    [
        ("truncated", "not a readable image"),
        (b"name,value\n1,2\n", "not a readable image"),
        (b"", "not a readable image"),
    ],
    ids=["truncated-png", "text-file", "empty-file"],
)
def test_unreadable_files_are_named(model, scene, tmp_path, content, message):
    path = tmp_path / "photo.png"
    if content == "truncated":
        Image.fromarray(scene).save(path)
        content = path.read_bytes()[:200]
    path.write_bytes(content)
    with pytest.raises(DataError, match=f"{path}.*{message}|{message}.*{path}"):
        model.segment(str(path))


def test_a_directory_and_a_missing_path_are_named(model, tmp_path):
    # A folder is segmented file by file (test_segment.py); one without images is named.
    (tmp_path / "notes.txt").write_text("no image here")
    with pytest.raises(FileNotFoundError, match=f"No image file in the folder {tmp_path} "):
        model.segment(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="No image file at .*nowhere.png"):
        model.segment(str(tmp_path / "nowhere.png"))


def test_unicode_and_spaces_in_paths(model, scene, tmp_path):
    folder = tmp_path / "Straßen Bilder ☀"
    folder.mkdir()
    path = folder / "straße 1.png"
    Image.fromarray(scene).save(path)
    np.testing.assert_array_equal(model.segment(str(path)), model.segment(scene))


def test_a_16_bit_pil_image_is_scaled_as_the_same_file_read_by_path(model, scene, tmp_path):
    gray16 = (scene.mean(-1) * 257).astype(np.uint16)
    path = tmp_path / "gray16.png"
    Image.fromarray(gray16).save(path)
    with Image.open(path) as image:
        assert image.mode.startswith("I")
        from_pil = model.segment(image)
    np.testing.assert_array_equal(from_pil, model.segment(str(path)))
    np.testing.assert_array_equal(from_pil, model.segment(gray16))


def test_symlinked_image_is_read(model, scene, tmp_path):
    Image.fromarray(scene).save(tmp_path / "real.png")
    os.symlink(tmp_path / "real.png", tmp_path / "link.png")
    np.testing.assert_array_equal(model.segment(str(tmp_path / "link.png")), model.segment(scene))

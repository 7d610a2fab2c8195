"""Dataset folders as users make them: wrong masks are named, harmless quirks are accepted."""

import os

import numpy as np
import pytest
from PIL import Image

from keras_danet import data
from keras_danet.data import DataError

CLASSES = ("background", "crack", "hole")


def _folder(root, count=3, size=(40, 60)):
    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for index in range(count):
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "images" / f"img_{index}.png")
        mask = rng.integers(0, len(CLASSES), size, dtype=np.uint8)
        Image.fromarray(mask).save(root / "masks" / f"img_{index}.png")
    return root


def _open(root, **options):
    return data.folder(
        root / "images", root / "masks", ".png", ".png", class_names=CLASSES, **options
    )


def test_extra_masks_without_images_are_ignored(tmp_path):
    root = _folder(tmp_path)
    Image.fromarray(np.zeros((40, 60), np.uint8)).save(root / "masks" / "orphan.png")
    dataset = _open(root, split="val")
    assert len(dataset.files) == 3
    assert all("orphan" not in label for _, label in dataset.files)


def test_an_rgb_mask_is_named(tmp_path):
    root = _folder(tmp_path)
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(root / "masks" / "img_1.png")
    with pytest.raises(DataError, match=r"img_1.png has shape \(40, 60, 3\).*not colours"):
        _open(root, split="val").sample(1)


def test_a_jpeg_mask_is_refused(tmp_path):
    root = _folder(tmp_path)
    for index in range(3):
        mask = np.zeros((40, 60), np.uint8)
        mask[10:30, 20:40] = 1
        Image.fromarray(mask).save(root / "masks" / f"img_{index}.jpg", quality=90)
    dataset = data.folder(root / "images", root / "masks", ".png", ".jpg", class_names=CLASSES)
    with pytest.raises(DataError, match=r"img_0.jpg is a JPEG: lossy compression.*as PNG"):
        dataset.sample(0)


def test_split_file_with_crlf_blank_lines_and_trailing_spaces(tmp_path):
    root = _folder(tmp_path)
    (root / "clean.txt").write_text("img_0\nimg_2\n")
    (root / "messy.txt").write_bytes(b"img_0  \r\n\r\n   \r\nimg_2\t\r\n\r\n")
    clean = _open(root, split="val", split_file=root / "clean.txt")
    messy = _open(root, split="val", split_file=root / "messy.txt")
    assert messy.files == clean.files and len(messy.files) == 2


def test_symlinked_images_and_masks(tmp_path):
    real = _folder(tmp_path / "real")
    linked = tmp_path / "linked"
    os.makedirs(linked)
    os.symlink(real / "images", linked / "images")
    os.symlink(real / "masks", linked / "masks")
    for a, b in zip(_open(real, split="val"), _open(linked, split="val"), strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_images_smaller_than_the_crop_are_padded_as_mmseg_pads(tmp_path):
    root = _folder(tmp_path, size=(20, 30))
    dataset = _open(root, crop_size=(48, 64), scale=(30, 20), batch_size=2, workers=1)
    images, labels = dataset[0]
    assert images.shape == (2, 48, 64, 3) and labels.shape == (2, 48, 64)
    assert (labels == 255).any()  # the padding is ignored by the loss
    assert set(np.unique(labels)) <= {0, 1, 2, 255}


def test_class_names_as_one_string_is_refused_with_the_list_it_meant(tmp_path):
    root = _folder(tmp_path)
    with pytest.raises(ValueError, match=r"not the string 'bg,crack'.*\['bg', 'crack'\]"):
        data.folder(root / "images", root / "masks", ".png", ".png", class_names="bg,crack")


@pytest.mark.parametrize("names", [["a", "", "b"], ["a", " "], ["a", "a"]])
def test_blank_or_repeated_class_names_are_refused(tmp_path, names):
    root = _folder(tmp_path)
    with pytest.raises(ValueError, match="class_names must be distinct and not blank"):
        data.folder(root / "images", root / "masks", ".png", ".png", class_names=names)


def test_a_missing_image_folder_and_split_file_are_named(tmp_path):
    with pytest.raises(DataError, match=f"The image folder {tmp_path / 'nope'} does not exist"):
        data.folder(tmp_path / "nope", tmp_path / "masks", class_names=CLASSES)
    root = _folder(tmp_path)
    with pytest.raises(DataError, match="The split file .*missing.txt does not exist"):
        _open(root, split_file=root / "missing.txt")


def test_a_float_mask_with_fractions_is_named_and_whole_floats_are_read(tmp_path):
    root = _folder(tmp_path)
    mask = np.ones((40, 60), np.float32)
    mask[5, 5] = 1.7  # a TIFF written after a bilinear resize
    Image.fromarray(mask).save(root / "masks" / "img_0.tif")
    for index in (1, 2):
        Image.fromarray(np.full((40, 60), 2.0, np.float32)).save(
            root / "masks" / f"img_{index}.tif"
        )
    dataset = data.folder(root / "images", root / "masks", ".png", ".tif", class_names=CLASSES)
    with pytest.raises(DataError, match=r"img_0.tif holds float32 values that are not class "):
        dataset.sample(0)
    label = dataset.sample(1)[1]
    assert label.dtype == np.uint8 and (label == 2).all()

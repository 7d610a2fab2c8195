"""Reading images and label maps as mmseg does, with errors that name the file."""

import os

import numpy as np

from keras_danet.constants import IGNORE_INDEX


class DataError(ValueError):
    """An image, label map or dataset folder that cannot be used, and why."""


def opencv():
    try:
        import cv2
    except ImportError:
        raise ImportError(
            "keras_danet.data reads and augments images with OpenCV: "
            "pip install 'keras-danet[data]' (opencv-python-headless)"
        ) from None
    return cv2


def read_image(path):
    """An RGB uint8 `(H, W, 3)` array, decoded by OpenCV as mmcv's `LoadImageFromFile`.

    OpenCV (not Pillow) decodes the file because mmseg trained and evaluated on OpenCV's
    decoding; JPEG decoders differ by a grey level here and there. Grayscale files get
    three equal channels, an alpha channel is dropped, as OpenCV's colour mode does.
    """
    cv2 = opencv()
    path = os.fspath(path)
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as error:
        raise DataError(f"Cannot read the image {path}: {error.strerror or error}.") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise DataError(f"{path} is not a readable image (empty, truncated or not an image).")
    return np.ascontiguousarray(image[:, :, ::-1])


def read_label(path, num_classes=None, reduce_zero_label=False, image_shape=None):
    """A uint8 `(H, W)` class map, read as mmseg's `LoadAnnotations` does, then checked.

    The file is read "unchanged" with Pillow, so palette PNGs (VOC) give their indices.
    With `reduce_zero_label` (ADE20K), 0 becomes 255 (ignored) and every other value drops
    by one. Checks, each naming the file: one channel; the size of its image
    (`image_shape`); every value below `num_classes` or 255.
    """
    from PIL import Image, UnidentifiedImageError

    path = os.fspath(path)
    try:
        with Image.open(path) as file:
            if file.format == "JPEG":
                raise DataError(
                    f"{path} is a JPEG: lossy compression changes the class indices along "
                    "every edge. Save label maps as PNG."
                )
            label = np.array(file)
    except FileNotFoundError:
        raise DataError(f"The label map {path} does not exist.") from None
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise DataError(f"{path} is not a readable label map: {error}.") from None
    label = np.squeeze(label)
    if label.ndim != 2:
        raise DataError(
            f"{path} has shape {label.shape}; a label map has one channel of class indices "
            "(a palette or grayscale PNG), not colours."
        )
    fractional = fractional_values(label)
    if fractional.size:
        raise DataError(
            f"{path} holds {label.dtype} values that are not class indices "
            f"({listed(fractional, 5)}): a label map holds whole numbers. Was it resized with "
            "interpolation? Save it as an 8-bit PNG of indices."
        )
    if label.dtype != np.uint8:
        if label.size and (label.min() < 0 or label.max() > 255):
            raise DataError(
                f"{path} holds values from {label.min()} to {label.max()}; class indices "
                "must fit in 0-255."
            )
        label = label.astype(np.uint8)
    if reduce_zero_label:
        label = reduce_zero(label)
    if image_shape is not None and tuple(label.shape) != tuple(image_shape[:2]):
        raise DataError(
            f"{path} is {label.shape[0]}x{label.shape[1]} but its image is "
            f"{image_shape[0]}x{image_shape[1]}: a label map must have its image's size."
        )
    if num_classes is not None:
        check_label_values(label, num_classes, path)
    return label


def fractional_values(labels):
    """The distinct values of float `labels` that are not whole numbers (NaN included):
    what a label map resized with interpolation holds. Empty for integer labels."""
    if labels.dtype.kind != "f":
        return labels.ravel()[:0]
    return np.unique(labels[labels != np.floor(labels)])


def listed(values, limit=10):
    """The first `limit` of `values` for an error message: "1.5, 7, 300 ..."."""
    shown = [f"{v:g}" if isinstance(v, float | np.floating) else str(v) for v in values[:limit]]
    return ", ".join(shown) + (" ..." if len(values) > limit else "")


def reduce_zero(label):
    """mmseg's `reduce_zero_label`: 0 (ADE20K's "other") -> 255, then every class - 1."""
    reduced = label.astype(np.int16) - 1
    reduced[label == 0] = IGNORE_INDEX
    reduced[label == IGNORE_INDEX] = IGNORE_INDEX
    return reduced.astype(np.uint8)


def check_label_values(label, num_classes, path="labels"):
    """Raises `DataError` naming the values >= `num_classes` (other than 255) and the file."""
    counts = np.bincount(label.ravel(), minlength=256)  # 10x faster than np.unique
    counts[IGNORE_INDEX] = 0
    bad = np.flatnonzero(counts[num_classes:]) + num_classes
    if bad.size:
        raise DataError(
            f"{path} has label values {listed(bad)}, but the dataset has {num_classes} classes "
            f"(0-{num_classes - 1}, and {IGNORE_INDEX} for ignored pixels)."
        )

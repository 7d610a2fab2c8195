"""Turning what users hand to `DANet.segment` into RGB 0-255 arrays, or a clear refusal."""

import logging
import os

import numpy as np

from keras_danet.data.images import read_image

logger = logging.getLogger("keras_danet")


def as_rgb(image, name="image"):
    """An `(H, W, 3)` RGB array, 0-255, from a path, a PIL image or an array.

    - files are decoded as mmseg decodes them (OpenCV; Pillow if OpenCV is not installed);
    - grayscale `(H, W)` or `(H, W, 1)` gets three equal channels; RGBA drops its alpha;
    - 16-bit images (arrays and PIL images) become 8-bit as OpenCV, and so mmseg, reads a
      16-bit file: the high byte (`v >> 8`);
    - float images are taken as 0-255 (a warning is logged if every value is within 0-1,
      or if any is outside 0-255);
    - anything else (a 1-D array, a batch of 5-D, 2 channels, complex numbers) is refused with
      a message that says what was received.
    """
    if isinstance(image, (str, os.PathLike)):
        return _read(os.fspath(image))
    if hasattr(image, "mode") and hasattr(image, "convert"):  # a PIL image
        name = getattr(image, "filename", "") or name
        if image.mode.startswith("I;16") or image.mode == "I":
            # 16-bit (and 32-bit integer) grayscale: convert("RGB") would clip at 255;
            # scaled below as a 16-bit file read by path is.
            image = np.asarray(image)
            if image.dtype != np.uint16 and image.size and 0 <= image.min() <= image.max() < 65536:
                image = image.astype(np.uint16)
        else:
            image = np.asarray(image.convert("RGBA" if "A" in image.mode else "RGB"))
    array = np.asarray(image)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.integer)
        or np.issubdtype(array.dtype, np.floating)
        or array.dtype == bool
    ):
        raise ValueError(f"{name}: an image must hold numbers, not {array.dtype}.")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ValueError(
            f"{name}: expected one image, (height, width) or (height, width, channels); got "
            f"shape {array.shape}. Pass a batch as a list of images."
        )
    channels = array.shape[2]
    if channels == 1:
        array = np.repeat(array, 3, axis=2)
    elif channels == 4:
        array = array[:, :, :3]
    elif channels != 3:
        raise ValueError(
            f"{name}: {channels} channels; an image has 1 (gray), 3 (RGB) or 4 (RGBA)."
        )
    if min(array.shape[:2]) < 1:
        raise ValueError(f"{name}: empty image of shape {array.shape}.")
    if array.dtype == np.uint16:
        return (array >> 8).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if array.size and float(np.nanmax(array)) <= 1.0 and float(np.nanmin(array)) >= 0.0:
            logger.warning(
                "%s: a float image with every value within 0-1; DANet expects 0-255 "
                "(multiply by 255 if it was scaled).",
                name,
            )
        if not np.isfinite(array).all():
            raise ValueError(f"{name}: the image holds NaN or infinite values.")
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 255.0:
            logger.warning(
                "%s: float values from %.4g to %.4g; DANet expects 0-255 (an image "
                "normalised to -1..1 or by a mean and std must be mapped back first).",
                name,
                low,
                high,
            )
        return array.astype(np.float32)
    if array.dtype == bool or array.min() < 0 or array.max() > 255:
        raise ValueError(
            f"{name}: values from {array.min()} to {array.max()} ({array.dtype}); pixels must "
            "be 0-255 (8-bit), 0-65535 (16-bit) or floats 0-255."
        )
    return array.astype(np.uint8)


def _read(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No image file at {path}.")
    try:
        return read_image(path)
    except ImportError:  # no OpenCV: Pillow, which decodes PNG identically
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as file:
                return as_rgb(file, name=path)
        except (UnidentifiedImageError, OSError) as error:
            raise ValueError(f"{path} is not a readable image: {error}") from None

"""Pictures of segmentations: colour maps and overlays (NumPy in, NumPy out)."""

import numpy as np


def colorize(labels, palette, ignore_index=255):
    """Maps a (H, W) class map to a (H, W, 3) uint8 RGB picture with `palette[class]`.

    Pixels equal to `ignore_index` (or outside the palette) are black.

    Example:
    >>> colors = colorize(logits.argmax(-1)[0], palette)
    """
    labels = np.asarray(labels)
    palette = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    picture = np.zeros(labels.shape + (3,), np.uint8)
    known = (labels >= 0) & (labels < len(palette)) & (labels != ignore_index)
    picture[known] = palette[labels[known]]
    return picture


def overlay(image, labels, palette, alpha=0.5, ignore_index=255):
    """Blends the colour map of `labels` over an RGB `image` (0-255); returns uint8 RGB."""
    image = np.asarray(image, dtype=np.float32)
    if image.shape[:2] != np.shape(labels):
        raise ValueError(f"image is {image.shape[:2]} but labels are {np.shape(labels)}.")
    colors = colorize(labels, palette, ignore_index).astype(np.float32)
    blended = (1 - alpha) * image + alpha * colors
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)

"""Procedurally generated street-like scenes with exact labels, for demos and tests.

Each scene has a sky band on top, grass below the horizon, a road narrowing towards it, and
a few objects (boxes and discs) in front. Every class has a varied colour and a texture, so
that a model has to look at more than one pixel, and the object outlines are labelled 255
(ignored), as VOC's boundaries are. NumPy only: it runs anywhere the package does.
"""

import os

import numpy as np

from keras_danet.constants import IGNORE_INDEX
from keras_danet.dataset_info import SYNTHETIC_SCENES

SKY, ROAD, GRASS, OBJECT = range(4)


def synthetic_scenes(count, height=64, width=96, seed=0):
    """`count` scenes: `(images, labels)`, uint8 `(count, H, W, 3)` RGB and `(count, H, W)`.

    Labels follow `keras_danet.dataset_info.SYNTHETIC_SCENES` (sky, road, grass, object),
    255 on object outlines. The same seed gives the same scenes.

    Example:
    >>> images, labels = synthetic_scenes(8, seed=1)
    """
    rng = np.random.default_rng(seed)
    images = np.empty((count, height, width, 3), np.uint8)
    labels = np.empty((count, height, width), np.uint8)
    for index in range(count):
        images[index], labels[index] = _scene(rng, height, width)
    return images, labels


def _texture(rng, height, width, scale):
    """Smooth noise: random values on a coarse grid, upsampled by repetition and blurred."""
    coarse = rng.normal(size=(height // scale + 2, width // scale + 2))
    fine = np.kron(coarse, np.ones((scale, scale)))[:height, :width]
    kernel = np.ones(scale) / scale
    fine = np.apply_along_axis(lambda row: np.convolve(row, kernel, "same"), 1, fine)
    return np.apply_along_axis(lambda column: np.convolve(column, kernel, "same"), 0, fine)


def _scene(rng, height, width):
    rows, columns = np.mgrid[0:height, 0:width]
    horizon = int(height * rng.uniform(0.3, 0.5))
    label = np.full((height, width), GRASS, np.uint8)
    label[rows < horizon] = SKY
    # A road from a wide base to a narrow top at the horizon, somewhere left or right.
    centre = width * rng.uniform(0.3, 0.7)
    depth = np.clip((rows - horizon) / max(height - horizon, 1), 0, 1)
    half_width = width * (0.03 + depth * rng.uniform(0.25, 0.4))
    label[(rows >= horizon) & (np.abs(columns - centre) < half_width)] = ROAD

    colours = {
        SKY: rng.uniform([60, 110, 170], [140, 190, 250]),
        ROAD: np.full(3, rng.uniform(70, 130)) + rng.uniform(-8, 8, 3),
        GRASS: rng.uniform([40, 100, 20], [110, 170, 70]),
    }
    image = np.zeros((height, width, 3), np.float32)
    for kind, scale, strength in [(SKY, 8, 12), (ROAD, 2, 14), (GRASS, 3, 28)]:
        texture = _texture(rng, height, width, scale)[..., None] * strength
        region = label == kind
        image[region] = (colours[kind] + texture)[region]
    # Sky brightens towards the horizon; road markings.
    image[label == SKY] += (rows[label == SKY] / max(horizon, 1))[:, None] * 30
    marking = (label == ROAD) & (np.abs(columns - centre) < 1 + depth * 2)
    marking &= (rows // 4) % 2 == 0
    image[marking] = 230

    outline = np.zeros((height, width), bool)
    for _ in range(rng.integers(1, 4)):
        top = rng.integers(horizon - height // 8, height - height // 6)
        left = rng.integers(0, width - width // 8)
        size_y = rng.integers(height // 8, height // 4)
        size_x = rng.integers(width // 10, width // 4)
        if rng.uniform() < 0.5:
            inside = (rows >= top) & (rows < top + size_y)
            inside &= (columns >= left) & (columns < left + size_x)
        else:
            radius = min(size_y, size_x) / 2
            inside = (rows - top - radius) ** 2 + (columns - left - radius) ** 2 < radius**2
        colour = rng.uniform(0, 255, 3)
        shade = _texture(rng, height, width, 2)[..., None] * 10
        image[inside] = (colour + shade)[inside]
        label[inside] = OBJECT
        grown = inside.copy()
        grown[1:] |= inside[:-1]
        grown[:-1] |= inside[1:]
        grown[:, 1:] |= inside[:, :-1]
        grown[:, :-1] |= inside[:, 1:]
        outline = (outline & ~inside) | (grown & ~inside)
    label[outline] = IGNORE_INDEX
    image += rng.normal(0, 4, image.shape)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), label


def save_synthetic_scenes(directory, count, height=64, width=96, seed=0, val_fraction=0.25):
    """Writes generated scenes as a folder dataset: `images/*.png`, `masks/*.png` (class
    indices), `train.txt` and `val.txt`. Returns `directory`.

    Example:
    >>> save_synthetic_scenes("scenes", 40)
    >>> train = keras_danet.data.folder("scenes/images", "scenes/masks", ".png", ".png",
    ...     split_file="scenes/train.txt", class_names=SYNTHETIC_SCENES.class_names)
    """
    from PIL import Image

    images, labels = synthetic_scenes(count, height, width, seed)
    for sub in ("images", "masks"):
        os.makedirs(os.path.join(directory, sub), exist_ok=True)
    names = [f"scene_{index:05d}" for index in range(count)]
    for name, image, label in zip(names, images, labels, strict=True):
        Image.fromarray(image).save(os.path.join(directory, "images", name + ".png"))
        Image.fromarray(label).save(os.path.join(directory, "masks", name + ".png"))
    validation = max(1, int(round(count * val_fraction))) if count > 1 else 0
    for split, chosen in (("train", names[validation:]), ("val", names[:validation])):
        with open(os.path.join(directory, f"{split}.txt"), "w") as file:
            file.write("".join(f"{name}\n" for name in chosen))
    return directory


__all__ = ["SYNTHETIC_SCENES", "save_synthetic_scenes", "synthetic_scenes"]

"""Segments a generated street-like picture with DANet and writes a PNG.

Run with `make demo`, or `python examples/demo.py --output demo.png`. The model has the full
mmseg R50-D8 Cityscapes architecture; its weights are random until a preset is given
(`--checkpoint path/to/mmseg.pth` converts a real mmseg DANet checkpoint).
"""

import argparse
import time

import keras
import numpy as np

import keras_danet
from keras_danet.dataset_info import CITYSCAPES
from keras_danet.visualize import colorize, overlay


def street_scene(height, width, seed=0):
    """A synthetic RGB 0-255 picture: sky, buildings, road and a few cars."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 1, height)[:, None, None]
    image = np.where(rows < 0.35, [90, 140, 210], [80, 80, 85]).astype(np.float32)
    image = np.broadcast_to(image, (height, width, 3)).copy()
    for left in range(0, width, width // 6):  # buildings
        top = int(height * rng.uniform(0.1, 0.3))
        image[top : int(height * 0.6), left : left + width // 7] = rng.uniform(90, 200, 3)
    for _ in range(3):  # cars
        y, x = int(height * rng.uniform(0.65, 0.8)), int(rng.uniform(0, width * 0.8))
        image[y : y + height // 10, x : x + width // 8] = rng.uniform(0, 255, 3)
    return np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="demo.png", help="PNG to write")
    parser.add_argument("--checkpoint", help="an mmseg DANet .pth to convert and use")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=512)
    args = parser.parse_args()

    started = time.perf_counter()
    if args.checkpoint:
        model = keras_danet.convert_mmseg_checkpoint(args.checkpoint)
    else:
        model = keras_danet.DANet(num_classes=19, depth=50)
    built = time.perf_counter()
    image = street_scene(args.height, args.width)
    logits = model.predict(image[None], verbose=0)
    labels = logits[0].argmax(-1)
    segmented = time.perf_counter()

    palette = CITYSCAPES.palette if model.num_classes == 19 else None
    if palette is None:  # mmseg's rule for datasets without a palette
        palette = np.random.RandomState(42).randint(0, 255, size=(model.num_classes, 3))
    picture = np.concatenate(
        [image.astype(np.uint8), colorize(labels, palette), overlay(image, labels, palette)],
        axis=1,
    )
    keras.utils.save_img(args.output, picture)
    print(
        f"DANet R{model.depth} ({model.count_params():,} parameters, backend "
        f"{keras.backend.backend()}): built in {built - started:.1f} s, segmented a "
        f"{args.height}x{args.width} image in {segmented - built:.1f} s; "
        f"{len(np.unique(labels))} classes found; wrote {args.output} "
        "(picture | colour map | overlay)"
    )
    if not args.checkpoint:
        print("The weights are random: the colours show the pipeline, not a trained model.")


if __name__ == "__main__":
    main()

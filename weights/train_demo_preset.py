"""Trains the bundled demo preset `danet_demo_shapes` with keras_danet's own training code.

A DANet R50-D8 at 1/16 of mmseg's widths (about 140,000 parameters, 600 KB) learns
the generated street scenes of `keras_danet.data.synthetic_scenes` (sky, road, grass,
objects), with `compile()`'s recipe (TorchSGD, poly decay, the four-term loss) and `fit`.
It then measures the mIoU on held-out generated scenes and writes the preset folder into the
package, where `DANet.from_preset("danet_demo_shapes")` and `keras-danet demo` find it.

Anyone can rerun it (about 5 minutes on a 2-core CPU with JAX):

    KERAS_BACKEND=jax python weights/train_demo_preset.py
"""

import argparse
import os
import time

import keras
import numpy as np

import keras_danet
from keras_danet.data import synthetic_scenes
from keras_danet.dataset_info import SYNTHETIC_SCENES
from keras_danet.presets.table import bundled_preset_folder

NAME = "danet_demo_shapes"
WIDTHS = dict(stem_channels=8, base_channels=4, head_channels=16, pam_channels=4, aux_channels=8)
SIZE = (96, 144)
TRAIN_SEED, HELD_OUT_SEED = 1, 12345  # the held-out set `keras-danet demo` reports on


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=768)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--out", default=bundled_preset_folder(NAME))
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    images, labels = synthetic_scenes(args.scenes, *SIZE, seed=TRAIN_SEED)
    mirrored = (
        np.concatenate([images, images[:, :, ::-1]]),
        np.concatenate([labels, labels[:, :, ::-1]]),
    )
    held_out = synthetic_scenes(64, *SIZE, seed=HELD_OUT_SEED)

    model = keras_danet.DANet(num_classes=SYNTHETIC_SCENES.num_classes, depth=50, **WIDTHS)
    model.compile(learning_rate=args.learning_rate)
    started = time.perf_counter()
    history = model.fit(*mirrored, batch_size=args.batch_size, epochs=args.epochs, verbose=2)
    seconds = time.perf_counter() - started
    result = keras_danet.evaluate(
        model, zip(*held_out, strict=True), class_names=SYNTHETIC_SCENES.class_names, progress=False
    )
    print(result)

    steps = args.epochs * (len(mirrored[0]) // args.batch_size)
    model.save_to_preset(
        args.out,
        dataset=SYNTHETIC_SCENES,
        metadata={
            "preset": NAME,
            "description": "DANet R50-D8 at 1/16 width trained on keras_danet's generated "
            "street scenes: a demo that works offline, not a model of real images.",
            "test_mode": "whole",
            "miou": round(result.miou * 100, 2),
            "held_out": {"count": 64, "height": SIZE[0], "width": SIZE[1], "seed": HELD_OUT_SEED},
            "training": {
                "script": "weights/train_demo_preset.py",
                "scenes": args.scenes,
                "seed": TRAIN_SEED,
                "epochs": args.epochs,
                "steps": steps,
                "batch_size": args.batch_size,
                "learning_rate": args.learning_rate,
                "final_loss": round(float(history.history["loss"][-1]), 4),
                "seconds": round(seconds),
                "backend": keras.backend.backend(),
            },
            "license": "Apache-2.0",
        },
    )
    size = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print(
        f"wrote {args.out} ({size / 1024:.0f} KB): {model.count_params():,} parameters, "
        f"held-out mIoU {result.miou * 100:.2f}, {steps} steps in {seconds:.0f} s"
    )


if __name__ == "__main__":
    main()

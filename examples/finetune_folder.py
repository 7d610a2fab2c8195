"""Fine-tune DANet on your own folder of images and masks, with mmseg's recipe.

Runs as is on a CPU in a few minutes: it generates a small dataset of street-like scenes
(images/*.png, masks/*.png, train.txt, val.txt) and fine-tunes the bundled demo preset on
it. Point --images/--masks at your own data (and --classes at its class names) to train on
yours, and --preset at a bigger preset ("danet_r50_ade20k") on a GPU.

    python examples/finetune_folder.py --out runs/scenes
    python examples/finetune_folder.py --images my/images --masks my/masks \
        --img-suffix .jpg --classes background,crack --preset danet_r50_ade20k --epochs 40
"""

import argparse
import os

import keras_danet
from keras_danet.dataset_info import SYNTHETIC_SCENES


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/finetune", help="where the preset is saved")
    parser.add_argument("--images", help="folder of images (default: generate scenes)")
    parser.add_argument("--masks", help="folder of masks, same names, class indices")
    parser.add_argument("--img-suffix", default=".png")
    parser.add_argument("--seg-map-suffix", default=".png")
    parser.add_argument("--classes", help="comma-separated class names, in index order")
    parser.add_argument("--preset", default="danet_demo_shapes", help="weights to start from")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=0.005)
    parser.add_argument("--crop", type=int, nargs=2, default=(64, 96), metavar=("H", "W"))
    parser.add_argument("--scenes", type=int, default=48, help="scenes to generate")
    return parser.parse_args()


def main():
    args = parse_args()
    if args.images is None:
        root = keras_danet.data.save_synthetic_scenes(
            os.path.join(args.out, "scenes"), args.scenes, height=96, width=144, seed=7
        )
        args.images, args.masks = f"{root}/images", f"{root}/masks"
        splits = {"train": f"{root}/train.txt", "val": f"{root}/val.txt"}
        class_names = SYNTHETIC_SCENES.class_names
        palette = SYNTHETIC_SCENES.palette
    else:
        splits = {"train": None, "val": None}
        class_names = args.classes.split(",")
        palette = None

    def split(name):
        return keras_danet.data.folder(
            args.images,
            args.masks,
            args.img_suffix,
            args.seg_map_suffix,
            split_file=splits[name],
            class_names=class_names,
            palette=palette,
            split=name,
            batch_size=args.batch_size if name == "train" else 1,
            crop_size=tuple(args.crop),
            scale=(args.crop[1] * 2, args.crop[0] * 2),
        )

    train, val = split("train"), split("val")
    print(train, val, sep="\n")
    print(train.check())  # every problem at once, and how often each class appears

    # The pretrained weights, with fresh classifiers for these classes.
    model = keras_danet.DANet.from_preset(args.preset, num_classes=len(class_names))
    # mmseg's recipe (SGD, poly decay, the four-term loss, mIoU); a lower rate for fine-tuning.
    model.compile(learning_rate=args.learning_rate)
    model.fit(
        train,
        validation_data=val,
        epochs=args.epochs,
        callbacks=[keras_danet.training.BackupAndRestore(os.path.join(args.out, "backup"))],
    )
    folder = model.save_to_preset(os.path.join(args.out, "preset"), dataset=train)
    print(f"Saved {folder}: keras_danet.DANet.from_preset({folder!r})")


if __name__ == "__main__":
    main()

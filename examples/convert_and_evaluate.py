"""Convert an mmseg DANet checkpoint and evaluate it the way mmseg did.

    python examples/convert_and_evaluate.py \
        danet_r50-d8_512x1024_40k_cityscapes_20200605_191324-c0dbfa5f.pth \
        --dataset cityscapes --data-root data/cityscapes --out converted/r50_cityscapes

Converting needs PyTorch (the .pth is read with torch.load(weights_only=True)); evaluating
runs on any backend. The released presets need no converting: DANet.from_preset(name) does
this, from the Hugging Face Hub or from the original file. With --preset NAME the test mode
(whole, or 769x769 windows) and test scale of that preset are used; otherwise pass --mode.
"""

import argparse

import keras_danet


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="an mmseg DANet .pth")
    parser.add_argument("--out", required=True, help="preset folder to write")
    parser.add_argument(
        "--dataset", choices=["cityscapes", "ade20k", "voc12aug", "folder"], required=True
    )
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--classes", help="folder datasets: comma-separated class names")
    parser.add_argument("--preset", help="take the test mode and metadata of this preset")
    parser.add_argument("--mode", choices=["whole", "slide"])
    parser.add_argument("--tta", action="store_true", help="multi-scale + flip as well")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    model = keras_danet.convert_mmseg_checkpoint(args.checkpoint)
    metadata = keras_danet.DANet.presets[args.preset].metadata() if args.preset else {}
    folder = model.save_to_preset(args.out, metadata=metadata)
    model = keras_danet.DANet.from_preset(folder)  # checks the written files, hash included
    print(f"converted to {folder}: R{model.depth}, {model.num_classes} classes")

    if args.dataset == "folder":
        data = keras_danet.data.folder(
            f"{args.data_root}/images",
            f"{args.data_root}/masks",
            ".png",
            ".png",
            class_names=args.classes.split(","),
            split=args.split,
        )
    else:
        data = getattr(keras_danet.data, args.dataset)(args.data_root, args.split)
    result = keras_danet.evaluate(model, data, mode=args.mode)
    print(result)
    if args.tta:
        print(keras_danet.evaluate(model, data, mode=args.mode, multi_scale=True))
    if args.json:
        result.save_json(args.json)


if __name__ == "__main__":
    main()

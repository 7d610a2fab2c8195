"""The command line's grammar: `keras-danet`'s commands, their options and defaults, and
the checks argparse makes before any work."""

import argparse
import re

from keras_danet.inference import flip_directions

DATASETS = ("cityscapes", "ade20k", "voc12aug", "folder")


class _HelpFormatter(argparse.HelpFormatter):
    """Shows each option's default in --help where it has one (argparse's own
    ArgumentDefaultsHelpFormatter prints "default: None" and "default: False" too)."""

    def _get_help_string(self, action):
        text = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS)
        if shown and "default" not in text and action.option_strings:
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2), as every other error,
    and --help shows the defaults."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def parser():
    parser = _Parser(
        prog="keras-danet",
        description="DANet semantic segmentation (Keras 3; TensorFlow, JAX or PyTorch).",
        epilog="Each command has its own --help.",
    )
    parser.add_argument(
        "--backend",
        choices=("tensorflow", "jax", "torch"),
        help="Keras backend (default: $KERAS_BACKEND, else Keras' default)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--version", action="store_true", help="keras-danet's and Keras' versions, the backend"
    )
    # Required unless --version: main() says so (argparse cannot make it conditional).
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = commands.add_parser("demo", help="segment generated scenes with the bundled preset")
    demo.add_argument("--out", default="keras_danet_demo", help="folder for the PNGs")
    demo.add_argument("--images", type=_positive, default=32, help="held-out scenes to score")

    predict = commands.add_parser("predict", help="segment images; write class maps as PNG")
    predict.add_argument("images", nargs="+", help="image files, folders or quoted patterns")
    predict.add_argument("--preset", default="danet_demo_shapes", help="preset, folder or hf://")
    predict.add_argument("--out", required=True, help="output folder")
    predict.add_argument("--overlay", action="store_true", help="also write overlays")
    _tta_arguments(predict)
    _mode_arguments(predict)

    evaluate = commands.add_parser("evaluate", help="mmseg's mIoU of a preset on a dataset")
    evaluate.add_argument("--preset", required=True)
    _dataset_arguments(evaluate, default_split="val")
    _tta_arguments(evaluate)
    evaluate.add_argument("--json", help="also write the results here")
    evaluate.add_argument(
        "--metrics",
        default="mIoU",
        help="mmseg's iou_metrics, comma-separated: mIoU, mDice, mFscore (default mIoU)",
    )
    evaluate.add_argument("--beta", type=float, default=1.0, help="the F-score's beta (mFscore)")
    evaluate.add_argument(
        "--nan-to-num", type=float, help="the value of a class absent from labels and predictions"
    )
    _mode_arguments(evaluate)

    convert = commands.add_parser("convert", help="mmseg DANet .pth -> preset folder")
    convert.add_argument("checkpoint", help="an mmseg DANet checkpoint (.pth)")
    convert.add_argument("out", help="the preset folder to write")
    convert.add_argument(
        "--align-corners",
        choices=("true", "false"),
        help="override what the checkpoint's config says",
    )
    convert.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a folder that holds other files (they are left alone)",
    )

    commands.add_parser("presets", help="list the presets")

    upload = commands.add_parser("upload", help="share a preset folder on the Hugging Face Hub")
    upload.add_argument("folder", help="a preset folder (save_to_preset or convert wrote it)")
    upload.add_argument("repo", help="hf://user/repo (created if needed)")
    upload.add_argument("--private", action="store_true", help="create the repo private")
    upload.add_argument("--endpoint", help="another Hub (default: $HF_ENDPOINT or huggingface.co)")

    attention = commands.add_parser("attention", help="picture of DANet's attention maps")
    attention.add_argument("image")
    where = attention.add_mutually_exclusive_group(required=True)
    where.add_argument("--xy", type=_xy, help="query point X,Y (pixels from the top-left)")
    where.add_argument("--point", type=_point, help="query point Y,X (row, column), as --xy")
    attention.add_argument("--preset", default="danet_demo_shapes", help="preset, folder or hf://")
    attention.add_argument("--channel", type=int, default=0, help="CAM channel to show")
    attention.add_argument("--out", default="attention.png", help="the picture (PNG)")

    export = commands.add_parser(
        "export", help="a preset as an ONNX, SavedModel, LiteRT or OpenVINO model"
    )
    export.add_argument("--preset", default="danet_demo_shapes", help="preset, folder or hf://")
    export.add_argument(
        "--format",
        choices=("onnx", "tf_saved_model", "litert", "openvino"),
        default="onnx",
        help="the file format",
    )
    export.add_argument("--out", required=True, help="the file (a folder for tf_saved_model)")
    export.add_argument("--labels", action="store_true", help="also output the argmax")
    export.add_argument(
        "--dtype", choices=("float32", "uint8"), default="float32", help="the input images' type"
    )
    export.add_argument("--height", type=_positive, help="fix the input height")
    export.add_argument("--width", type=_positive, help="fix the input width")
    export.add_argument(
        "--int8", action="store_true", help="quantize to int8 (onnx, openvino); needs --calibration"
    )
    export.add_argument(
        "--calibration", metavar="FOLDER", help="images like those the model will see, for --int8"
    )

    check = commands.add_parser("check-data", help="read a whole dataset; report problems")
    _dataset_arguments(check, default_split="train")
    return parser


def _mode_arguments(parser):
    parser.add_argument("--mode", choices=("whole", "slide"), help="default: the preset's")
    parser.add_argument("--crop", type=_size, help="slide window H,W")
    parser.add_argument("--stride", type=_size, help="slide stride H,W")


def _dataset_arguments(parser, default_split):
    parser.add_argument("--dataset", choices=DATASETS, required=True)
    parser.add_argument("--data-root", required=True, help="the dataset's root folder")
    parser.add_argument("--split", default=default_split, help="the dataset's split")
    parser.add_argument("--images-dir", help="folder datasets: images (default ROOT/images)")
    parser.add_argument("--masks-dir", help="folder datasets: masks (default ROOT/masks)")
    parser.add_argument("--img-suffix", default=".jpg", help="folder datasets: image files' end")
    parser.add_argument("--seg-map-suffix", default=".png", help="folder datasets: masks' end")
    parser.add_argument("--split-file", help="folder datasets: names of the split, one a line")
    parser.add_argument(
        "--classes",
        help="comma-separated class names: for a named dataset a subset or re-ordering of its "
        "classes (the others ignored, as mmseg's metainfo classes); for a folder, its classes",
    )
    parser.add_argument("--reduce-zero-label", action="store_true")


def _tta_arguments(parser):
    parser.add_argument("--tta", action="store_true", help="multi-scale + flip")
    parser.add_argument(
        "--flip",
        type=_flips,
        default="horizontal",
        help="with --tta: the flipped views, comma-separated (horizontal, vertical) or none",
    )


def _flips(text):
    directions = [d.strip() for d in text.split(",") if d.strip() and d.strip() != "none"]
    try:
        return flip_directions(directions)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _pair(text, smallest, what):
    try:
        first, second = (int(value) for value in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two integers as {what}; got {text!r}") from None
    if min(first, second) < smallest:
        raise argparse.ArgumentTypeError(
            f"{text}: both numbers must be {smallest} or more (pixels; {what})"
        )
    return first, second


def _point(text):
    return _pair(text, 0, "Y,X from the top-left corner")


def _xy(text):
    x, y = _pair(text, 0, "X,Y from the top-left corner")
    return y, x


def _size(text):
    return _pair(text, 1, "H,W")


def _positive(text):
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number; got {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be 1 or more")
    return number


# argparse reads "-5,10" as an option (it is not a plain negative number), so `--point -5,10`
# would fail with "expected one argument"; joined as `--point=-5,10` it reaches the check
# of the value, which names the real problem.
_PAIR_OPTIONS = ("--point", "--xy", "--crop", "--stride")
_NEGATIVE_PAIR = re.compile(r"-\d+,-?\d+")


def join_negative_pairs(argv):
    joined = []
    for argument in argv:
        if joined and joined[-1] in _PAIR_OPTIONS and _NEGATIVE_PAIR.fullmatch(argument):
            joined[-1] = f"{joined[-1]}={argument}"
        else:
            joined.append(argument)
    return joined

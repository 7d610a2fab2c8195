"""`keras-danet`: segment images, evaluate, convert checkpoints, look at attention, from a shell.

    keras-danet demo                                  # offline, under a minute on a CPU
    keras-danet predict street.png --preset danet_r50_cityscapes --out out/ --overlay
    keras-danet evaluate --preset danet_r101_cityscapes --dataset cityscapes \
        --data-root data/cityscapes
    keras-danet attention street.png --xy 600,300 --out attention.png
    keras-danet export --preset danet_r50_cityscapes --format onnx --out danet.onnx --labels
    keras-danet convert danet_r50-d8_512x1024_40k_cityscapes.pth my_preset/
    keras-danet presets
    keras-danet upload my_preset/ hf://my-name/danet-potholes
    keras-danet check-data --dataset ade20k --data-root data/ade/ADEChallengeData2016

`--backend` (or $KERAS_BACKEND) picks TensorFlow, JAX or PyTorch. Exit status: 0 on
success, 2 with a one-line reason on bad input, 1 if `check-data` finds problems.
"""

import argparse
import contextlib
import os
import re
import sys

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


def _parser():
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
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

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
    from keras_danet.inference import flip_directions

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


def _join_negative_pairs(argv):
    joined = []
    for argument in argv:
        if joined and joined[-1] in _PAIR_OPTIONS and _NEGATIVE_PAIR.fullmatch(argument):
            joined[-1] = f"{joined[-1]}={argument}"
        else:
            joined.append(argument)
    return joined


def _dataset(args):
    from keras_danet import data

    if args.dataset != "folder":
        classes = [name.strip() for name in args.classes.split(",")] if args.classes else None
        return getattr(data, args.dataset)(
            args.data_root, args.split, augment=False, classes=classes
        )
    if not args.classes:
        raise ValueError("a folder dataset needs --classes name1,name2,...")
    return data.folder(
        args.images_dir or os.path.join(args.data_root, "images"),
        args.masks_dir or os.path.join(args.data_root, "masks"),
        args.img_suffix,
        args.seg_map_suffix,
        split_file=args.split_file,
        reduce_zero_label=args.reduce_zero_label,
        class_names=args.classes.split(","),
        split=args.split,
        augment=False,
    )


def _settings(model, args):
    from keras_danet.inference import InferenceSettings

    return InferenceSettings.of(model, args.mode, args.crop, args.stride)


def _demo(args):
    import keras

    from keras_danet import DANet, evaluate
    from keras_danet.data import synthetic_scenes
    from keras_danet.visualize import (
        attention_figure,
        channel_attention_map,
        overlay_with_legend,
        palette_and_names,
        position_attention_map,
        save_png,
    )

    model = DANet.from_preset("danet_demo_shapes")
    held_out = model.preset_metadata.get("held_out", {"height": 96, "width": 144, "seed": 12345})
    size = (held_out["height"], held_out["width"])
    images, labels = synthetic_scenes(args.images, *size, seed=held_out["seed"])
    result = evaluate(model, zip(images, labels, strict=True), progress=not args.quiet)
    print(result)
    # The pictures show a scene twice the training size: the model is fully convolutional,
    # and the attention map has more positions to spread over.
    picture_size = (2 * size[0], 2 * size[1])
    image = synthetic_scenes(1, *picture_size, seed=2026)[0][0]
    prediction = model.segment(image)
    palette, names = palette_and_names(model)
    os.makedirs(args.out, exist_ok=True)
    overlay_path = save_png(
        os.path.join(args.out, "overlay.png"),
        overlay_with_legend(image, prediction, palette, names),
    )
    point = (int(picture_size[0] * 0.8), int(picture_size[1] * 0.5))  # on the road
    attention, _ = position_attention_map(model, image, point)
    channel = channel_attention_map(model, image, 0)
    picture = attention_figure(image, attention, point, channel, 0, "danet_demo_shapes")
    attention_path = save_png(os.path.join(args.out, "attention.png"), picture)
    print(
        f"{keras.backend.backend()}: held-out mIoU {result.miou * 100:.2f} on {args.images} "
        f"generated scenes; wrote {overlay_path} and {attention_path}"
    )


def _predict(args):
    from keras_danet import DANet
    from keras_danet.inference import image_files
    from keras_danet.visualize import palette_and_names

    # A folder or a quoted pattern stands for its image files.
    args.images = [file for item in args.images for file in image_files(item) or [item]]
    outputs = _predict_outputs(args.images, args.out, args.overlay)
    model = DANet.from_preset(args.preset, progress=not args.quiet)
    print(f"preset {args.preset}: {_described(model)}")
    settings = _settings(model, args)
    palette, names = palette_and_names(model)
    with _created_folder(args.out):
        _segment_into(model, args, settings, outputs, palette, names)
    print(f"wrote {len(args.images)} class maps to {args.out}")


def _described(model):
    metadata = model.preset_metadata
    classes = metadata.get("class_names") or []
    shown = ", ".join(classes[:6]) + (", ..." if len(classes) > 6 else "")
    text = metadata.get("description") or f"{model.num_classes} classes"
    return text + (f" ({len(classes)} classes: {shown})" if classes else "")


@contextlib.contextmanager
def _created_folder(folder):
    """Makes `folder` and its missing parents; if the work then fails, removes those again
    while empty, so that a failed run leaves nothing behind (a folder that was there is
    never removed)."""
    from keras_danet.atomic_files import output_path

    folder = output_path(folder, "--out")
    created, parent = [], folder
    while parent and not os.path.isdir(parent):
        created.append(parent)
        parent = os.path.dirname(parent)
    os.makedirs(folder, exist_ok=True)
    try:
        yield
    except BaseException:
        for made in created:  # deepest first
            try:
                os.rmdir(made)
            except OSError:  # not empty: what was written stays, and its parents
                break
        raise


def _segment_into(model, args, settings, outputs, palette, names):
    from tqdm.auto import tqdm

    from keras_danet.image_conversion import as_rgb
    from keras_danet.visualize import overlay_with_legend, save_label_png, save_png

    for path in tqdm(args.images, desc="segmenting", disable=args.quiet):
        image = as_rgb(path)
        labels = model.segment(
            image,
            mode=settings.mode,
            crop=settings.crop,
            stride=settings.stride,
            test_scale=settings.test_scale,
            multi_scale=args.tta,
            flip=args.flip,
        )
        label_path, overlay_path = outputs[path]
        save_label_png(label_path, labels, palette)
        if args.overlay:
            save_png(overlay_path, overlay_with_legend(image, labels, palette, names))


def _predict_outputs(images, out, overlay):
    """`{image: (class map path, overlay path)}`, refused before any work where two images
    would write one file, or a class map would overwrite one of the images."""
    from keras_danet.atomic_files import output_path

    out = output_path(out, "--out")
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out} is a file; it must be a folder (it is created if missing).")
    outputs, writers = {}, {}
    inputs = {os.path.realpath(image) for image in images}
    for image in images:
        stem = os.path.splitext(os.path.basename(image))[0]
        paths = (os.path.join(out, f"{stem}.png"), os.path.join(out, f"{stem}_overlay.png"))
        for path in paths[: 2 if overlay else 1]:
            if path in writers and writers[path] != image:
                raise ValueError(
                    f"{writers[path]} and {image} would both be written to {path}; "
                    "segment them into different --out folders, or rename one."
                )
            if os.path.realpath(path) in inputs:
                raise ValueError(f"{path} is one of the input images; choose another --out.")
            writers[path] = image
        outputs[image] = paths
    return outputs


def _check_output_file(path, option, inputs=()):
    """Refuses, before any work, an output file that cannot be written, or that is one of
    `inputs` (files, or folders whose existing files are all inputs: a preset, a dataset)."""
    from keras_danet.atomic_files import output_path

    path = output_path(path, option)
    if os.path.isdir(path):
        raise ValueError(f"{option} {path} is a folder; give the path of a file.")
    real = os.path.realpath(path)
    for source in inputs:
        source_real = os.path.realpath(source or "")
        if not source or not os.path.exists(source_real):  # a preset name, an unset option
            continue
        inside = os.path.isdir(source_real) and real.startswith(source_real + os.sep)
        if real == source_real or (inside and os.path.exists(real)):
            what = f"a file of the input {source}" if inside else "one of the inputs"
            raise ValueError(f"{option} {path} is {what}; choose another {option}.")
    folder = os.path.dirname(path)
    while not os.path.exists(folder):  # the nearest existing folder is where it is created
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: cannot write in {folder}.")
    return path


def _evaluate(args):
    from keras_danet import DANet, evaluate
    from keras_danet.metrics import SegmentationMetrics

    if args.json:
        _check_output_file(
            args.json,
            "--json",
            inputs=(args.data_root, args.images_dir, args.masks_dir, args.split_file, args.preset),
        )
    metrics = [name.strip() for name in args.metrics.split(",") if name.strip()]
    SegmentationMetrics(1, metrics=metrics)  # an unknown name is refused before the work
    model = DANet.from_preset(args.preset, progress=not args.quiet)
    settings = _settings(model, args)
    result = evaluate(
        model,
        _dataset(args),
        mode=settings.mode,
        crop=settings.crop,
        stride=settings.stride,
        multi_scale=args.tta,
        flip=args.flip,
        progress=not args.quiet,
        metrics=metrics,
        beta=args.beta,
        nan_to_num=args.nan_to_num,
    )
    print(result)
    if args.json:
        print(f"wrote {result.save_json(args.json)}")


def _convert(args):
    from keras_danet import convert_mmseg_checkpoint
    from keras_danet.presets.saving import check_preset_target

    check_preset_target(args.out, args.overwrite)  # before the conversion, not after
    align = None if args.align_corners is None else args.align_corners == "true"
    model = convert_mmseg_checkpoint(args.checkpoint, align_corners=align)
    folder = model.save_to_preset(
        args.out, metadata={"source": os.path.abspath(args.checkpoint)}, overwrite=args.overwrite
    )
    print(f"DANet R{model.depth}, {model.num_classes} classes -> {folder}")


def _presets(args):
    from keras_danet.presets import ALIASES, PRESETS, BundledFolder

    aliases = {name: alias for alias, name in ALIASES.items()}
    rows = [("preset", "alias", "kind", "dataset", "classes", "mIoU", "ms+flip")]
    for preset in PRESETS.values():
        kind = {"ResNetV1c": "backbone"}.get(preset.architecture, "DANet")
        if isinstance(preset.source, BundledFolder):
            kind = "DANet, bundled"
        rows.append(
            (
                preset.name,
                aliases.get(preset.name, ""),
                kind,
                preset.dataset.name if preset.dataset else preset.training.get("dataset", "-"),
                str(preset.num_classes or "-"),
                f"{preset.miou:.2f}" if preset.miou else "-",
                f"{preset.miou_ms_flip:.2f}" if preset.miou_ms_flip else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
        )


def _upload(args):
    from keras_danet.presets import Preset, upload_preset

    print(f"uploading {args.folder} to {args.repo} ...", flush=True)
    # The token is huggingface_hub's: $HF_TOKEN, or what `hf auth login` stored.
    handle = upload_preset(
        args.repo, args.folder, private=args.private or None, endpoint=args.endpoint
    )
    if Preset.from_folder(args.folder).architecture == "ResNetV1c":
        print(f"uploaded: DANet(num_classes=K, backbone={handle!r})")
    else:
        print(f"uploaded: DANet.from_preset({handle!r})")


def _attention(args):
    from keras_danet import DANet
    from keras_danet.image_conversion import as_rgb
    from keras_danet.visualize import (
        attention_figure,
        channel_attention_map,
        position_attention_map,
        save_png,
    )

    point = args.xy or args.point  # (y, x) either way
    _check_output_file(args.out, "--out", inputs=(args.image, args.preset))
    model = DANet.from_preset(args.preset, progress=not args.quiet)
    image = as_rgb(args.image)
    attention, _ = position_attention_map(model, image, point)
    channel = channel_attention_map(model, image, args.channel)
    picture = attention_figure(image, attention, point, channel, args.channel, args.preset)
    print(f"wrote {save_png(args.out, picture)}")


def _check_data(args):
    from keras_danet.data import DataError

    if not os.path.isdir(args.data_root):  # a wrong argument, not a problem of the data
        raise ValueError(f"--data-root {args.data_root} is not a folder.")
    try:
        dataset = _dataset(args)
    except DataError as error:  # missing masks, an empty split: what this command looks for
        print(f"problems: {' '.join(str(error).split())}")
        return 1
    report = dataset.check(progress=not args.quiet)
    print(report)
    return 0 if report.ok else 1


def _export(args):
    from keras_danet import DANet, export
    from keras_danet.quantization import check_calibration

    if (args.height is None) != (args.width is None):
        raise ValueError("--height and --width go together: give both, or neither.")
    if args.int8 != (args.calibration is not None):
        raise ValueError(
            "--int8 and --calibration FOLDER go together: int8 measures each activation's "
            "range on a folder of images like those the model will see."
        )
    check_calibration(args.int8, args.calibration, args.format)
    out = _check_output_file(args.out, "--out", inputs=(args.preset, args.calibration))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    model = DANet.from_preset(args.preset, progress=not args.quiet)
    size = (args.height, args.width) if args.height else None
    if not args.quiet:
        kind = " int8" if args.int8 else ""
        print(f"exporting {args.preset} to{kind} {args.format} ...", flush=True)
    export(
        model,
        out,
        args.format,
        labels=args.labels,
        dtype=args.dtype,
        size=size,
        int8=args.int8,
        calibration=args.calibration,
    )
    height, width = size or ("H", "W")
    outputs = f"logits (N, {height}, {width}, {model.num_classes}) float32"
    if args.labels:
        outputs += f", labels (N, {height}, {width}) int32"
    print(
        f"wrote {out} ({_megabytes(out, args.format)} MB{', int8' if args.int8 else ''}): "
        f"input images "
        f"(N, {height}, {width}, 3) {args.dtype}; outputs {outputs}"
    )


def _megabytes(path, format):
    from keras_danet.deployment import written_paths

    total = 0
    for written in written_paths(path, format):
        if os.path.isdir(written):
            for folder, _, files in os.walk(written):
                total += sum(os.path.getsize(os.path.join(folder, f)) for f in files)
        else:
            total += os.path.getsize(written)
    return f"{total / 2**20:.1f}"


COMMANDS = {
    "demo": _demo,
    "predict": _predict,
    "evaluate": _evaluate,
    "convert": _convert,
    "presets": _presets,
    "upload": _upload,
    "attention": _attention,
    "export": _export,
    "check-data": _check_data,
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(_join_negative_pairs(argv))
    if args.backend:  # before anything imports Keras
        os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_danet.data import DataError
    from keras_danet.deployment import ExportError
    from keras_danet.presets import PresetError

    try:
        return COMMANDS[args.command](args) or 0
    except (
        DataError,
        PresetError,
        ValueError,
        FileNotFoundError,
        FileExistsError,
        ImportError,
        ExportError,
    ) as error:
        message = " ".join(str(error).split())
        print(f"keras-danet {args.command}: {message}", file=sys.stderr)
        return 2
    except OSError as error:  # an unwritable folder, a full disk: the file and the reason
        print(f"keras-danet {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"keras-danet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""What each `keras-danet` command does, given its parsed arguments."""

import os

import keras

from keras_danet import data
from keras_danet.cli.output_files import check_output_file, created_folder, predict_outputs
from keras_danet.convert.mmseg import convert_mmseg_checkpoint
from keras_danet.data import DataError, synthetic_scenes
from keras_danet.deployment import export, written_paths
from keras_danet.evaluation import evaluate
from keras_danet.image_input import as_rgb
from keras_danet.inference import image_files
from keras_danet.metrics import SegmentationMetrics
from keras_danet.models import DANet
from keras_danet.presets import ALIASES, PRESETS, BundledFolder, Preset, upload_preset
from keras_danet.presets.preset import TestSettings
from keras_danet.presets.saving import check_preset_target
from keras_danet.quantization import check_calibration
from keras_danet.visualize import (
    attention_figure,
    channel_attention_map,
    overlay_with_legend,
    palette_and_names,
    position_attention_map,
    save_label_png,
    save_png,
)


def _dataset(args):
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
    return TestSettings.of(model, args.mode, args.crop, args.stride)


def _demo(args):
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
    # A folder or a quoted pattern stands for its image files.
    args.images = [file for item in args.images for file in image_files(item) or [item]]
    outputs = predict_outputs(args.images, args.out, args.overlay)
    model = DANet.from_preset(args.preset, progress=not args.quiet)
    print(f"preset {args.preset}: {_described(model)}")
    settings = _settings(model, args)
    palette, names = palette_and_names(model)
    with created_folder(args.out):
        _segment_into(model, args, settings, outputs, palette, names)
    print(f"wrote {len(args.images)} class maps to {args.out}")


def _described(model):
    preset = model.preset
    classes = list(preset.dataset.class_names) if preset.dataset else []
    shown = ", ".join(classes[:6]) + (", ..." if len(classes) > 6 else "")
    text = preset.description or f"{model.num_classes} classes"
    return text + (f" ({len(classes)} classes: {shown})" if classes else "")


def _segment_into(model, args, settings, outputs, palette, names):
    from tqdm.auto import tqdm  # reads TQDM_* settings when imported

    for path in tqdm(args.images, desc="segmenting", disable=args.quiet):
        image = as_rgb(path)
        labels = model.segment(
            image,
            mode=settings.mode,
            crop=settings.crop,
            stride=settings.stride,
            test_scale=settings.scale,
            multi_scale=args.tta,
            flip=args.flip,
        )
        label_path, overlay_path = outputs[path]
        save_label_png(label_path, labels, palette)
        if args.overlay:
            save_png(overlay_path, overlay_with_legend(image, labels, palette, names))


def _evaluate(args):
    if args.json:
        check_output_file(
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
    check_preset_target(args.out, args.overwrite)  # before the conversion, not after
    align = None if args.align_corners is None else args.align_corners == "true"
    model = convert_mmseg_checkpoint(args.checkpoint, align_corners=align)
    folder = model.save_to_preset(
        args.out, metadata={"source": os.path.abspath(args.checkpoint)}, overwrite=args.overwrite
    )
    print(f"DANet R{model.depth}, {model.num_classes} classes -> {folder}")


def _presets(args):
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
                *(
                    f"{preset.metrics[key]:.2f}" if preset.metrics.get(key) else "-"
                    for key in ("mIoU", "mIoU_ms_flip")
                ),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
        )


def _upload(args):
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
    point = args.xy or args.point  # (y, x) either way
    check_output_file(args.out, "--out", inputs=(args.image, args.preset))
    model = DANet.from_preset(args.preset, progress=not args.quiet)
    image = as_rgb(args.image)
    attention, _ = position_attention_map(model, image, point)
    channel = channel_attention_map(model, image, args.channel)
    picture = attention_figure(image, attention, point, channel, args.channel, args.preset)
    print(f"wrote {save_png(args.out, picture)}")


def _check_data(args):
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
    if (args.height is None) != (args.width is None):
        raise ValueError("--height and --width go together: give both, or neither.")
    if args.int8 != (args.calibration is not None):
        raise ValueError(
            "--int8 and --calibration FOLDER go together: int8 measures each activation's "
            "range on a folder of images like those the model will see."
        )
    check_calibration(args.int8, args.calibration, args.format)
    out = check_output_file(args.out, "--out", inputs=(args.preset, args.calibration))
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

"""`keras_danet.evaluate`: a model's mmseg metrics on a dataset, with its preset's test mode."""

import time

import numpy as np

from keras_danet.constants import MULTI_SCALE_RATIOS
from keras_danet.inference import class_scores, flip_directions
from keras_danet.metrics import SegmentationMetrics
from keras_danet.presets.preset import TestSettings


def _samples(data):
    """`(image, label)` pairs at original size from a keras_danet dataset or any iterable."""
    if hasattr(data, "sample") and hasattr(data, "files"):
        for index in range(len(data.files)):
            yield data.sample(index)
        return
    for images, labels in data:
        images, labels = np.asarray(images), np.asarray(labels)
        if images.ndim == 3:
            yield images, labels
            continue
        if labels.ndim == 4 and labels.shape[-1] == 1:
            labels = labels[..., 0]
        yield from zip(images, labels, strict=True)


def _flips(flip):
    directions = flip_directions(flip)
    return f" + flip ({', '.join(directions)})" if directions else ""


def evaluate(
    model,
    data,
    mode=None,
    crop=None,
    stride=None,
    test_scale=None,
    multi_scale=False,
    ratios=MULTI_SCALE_RATIOS,
    flip=True,
    ratios_of="image",
    class_names=None,
    window_batch_size=2,
    progress=True,
    metrics=("mIoU",),
    beta=1,
    nan_to_num=None,
):
    """mmseg's metrics (aAcc, mIoU, mAcc, per class) of `model` on `data`.

    Each image is segmented at its original resolution with the preset's test mode (whole,
    or slide with its crop and stride; `model.preset.test`), or the `mode`, `crop`,
    `stride` and `test_scale` given; `multi_scale=True` adds mmseg's multi-scale + flip
    test. Predictions and labels are counted over the whole dataset, 255 ignored.

    `data` is a `keras_danet.data` dataset (its images are read at original size, labels
    as mmseg reads them) or any iterable of `(image, label)` pairs or batches.

    `metrics`, `beta` and `nan_to_num` are mmseg's `IoUMetric` options: any of "mIoU",
    "mDice" and "mFscore" (F-score with `beta`, precision, recall); `nan_to_num` replaces
    the NaN of a class absent from labels and predictions.

    Returns a `SegmentationResult`: print it for mmseg's per-class table, `.summary()`,
    `.to_dict()`, `.save_json(path)`.

    Example:
    >>> val = keras_danet.data.cityscapes("data/cityscapes", "val")
    >>> result = keras_danet.evaluate(model, val)
    >>> print(result)                      # per-class table, then aAcc / mIoU / mAcc
    >>> result.save_json("cityscapes_val.json")
    """
    from tqdm.auto import tqdm  # reads TQDM_* settings when imported

    settings = TestSettings.of(model, mode, crop, stride, test_scale)
    if class_names is None:
        info = getattr(data, "info", None)
        class_names = getattr(info, "class_names", None)
        if class_names is None and model.preset.dataset is not None:
            class_names = model.preset.dataset.class_names
    if class_names is not None and len(class_names) != model.num_classes:
        raise ValueError(
            f"{len(class_names)} class names for a model of {model.num_classes} classes."
        )
    counts = SegmentationMetrics(
        model.num_classes, class_names, metrics=metrics, beta=beta, nan_to_num=nan_to_num
    )
    total = len(data.files) if hasattr(data, "files") else None
    description = settings.describe() + (
        f"; multi-scale {list(ratios)}{_flips(flip)} ({ratios_of})" if multi_scale else ""
    )
    bar = tqdm(total=total, desc="evaluating", unit="image", disable=not progress)
    started = time.perf_counter()
    with bar:
        for image, label in _samples(data):
            scores = class_scores(
                model, image, settings, multi_scale, ratios, flip, ratios_of, window_batch_size
            )
            counts.update(scores.argmax(-1), label)
            bar.update(1)
            running = counts.result().miou
            bar.set_postfix(mIoU=f"{running * 100:.2f}" if np.isfinite(running) else "nan")
    seconds = time.perf_counter() - started
    if counts.images == 0:
        raise ValueError("No images to evaluate: the data is empty.")
    return counts.result(seconds_per_image=seconds / counts.images, description=description)

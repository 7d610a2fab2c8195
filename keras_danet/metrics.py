"""mmseg's segmentation metrics (`IoUMetric`): aAcc, mIoU, mAcc and per-class IoU and accuracy.

Counted on a dataset-wide confusion matrix at the original resolution, 255 ignored, in exact
64-bit integers (mmseg sums float32 histograms, which lose units beyond 16.7 million pixels
per class: a difference in the 7th digit). `keras.metrics.MeanIoU` is the same confusion
matrix, but gives neither per-class figures nor accuracies, and its counts are 32-bit on
JAX: 500 Cityscapes validation frames overflow them.
"""

import dataclasses
import json
import os

import numpy as np

from keras_danet.atomic_files import atomic_write_path

IGNORE_INDEX = 255


class SegmentationMetrics:
    """Accumulates predictions against labels; `result()` gives mmseg's metrics.

    Example:
    >>> metrics = SegmentationMetrics(num_classes=19)
    >>> metrics.update(prediction, label)           # (H, W) class maps, or batches of them
    >>> metrics.result().miou
    """

    def __init__(self, num_classes, class_names=None, ignore_index=IGNORE_INDEX):
        self.num_classes = int(num_classes)
        if class_names is not None and len(class_names) != self.num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes.")
        self.class_names = tuple(class_names or (f"class_{i}" for i in range(self.num_classes)))
        self.ignore_index = ignore_index
        self.reset()

    def reset(self):
        self.confusion = np.zeros((self.num_classes, self.num_classes), np.int64)
        self.images = 0

    def update(self, predictions, labels):
        """Adds class maps: `predictions` and `labels` of one shape, (H, W) or (batch, H, W)."""
        predictions, labels = np.asarray(predictions), np.asarray(labels)
        if labels.ndim == predictions.ndim + 1 and labels.shape[-1] == 1:
            labels = labels[..., 0]
        if predictions.shape != labels.shape:
            raise ValueError(
                f"predictions {predictions.shape} and labels {labels.shape} differ in shape: "
                "predict at the labels' (original) resolution."
            )
        self.images += 1 if labels.ndim == 2 else labels.shape[0]
        valid = labels != self.ignore_index
        labels, predictions = labels[valid].astype(np.int64), predictions[valid].astype(np.int64)
        outside = (labels >= self.num_classes) | (labels < 0)
        if outside.any():
            raise ValueError(
                f"labels hold {np.unique(labels[outside])[:10]}, outside 0-{self.num_classes - 1} "
                f"and {self.ignore_index}."
            )
        # As mmseg's histograms: predictions outside the classes count in no bin.
        inside = (predictions >= 0) & (predictions < self.num_classes)
        self.confusion += np.bincount(
            labels[inside] * self.num_classes + predictions[inside],
            minlength=self.num_classes**2,
        ).reshape(self.num_classes, self.num_classes)
        return self

    def result(self, **details):
        """The `SegmentationResult` of everything added so far."""
        intersection = np.diag(self.confusion).astype(np.float64)
        label_area = self.confusion.sum(1).astype(np.float64)
        predicted_area = self.confusion.sum(0).astype(np.float64)
        union = label_area + predicted_area - intersection
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = intersection / union
            accuracy = intersection / label_area
            aacc = intersection.sum() / label_area.sum()
        return SegmentationResult(
            class_names=self.class_names,
            iou=iou,
            accuracy=accuracy,
            aacc=float(aacc),
            images=self.images,
            pixels=int(label_area.sum()),
            **details,
        )


def _nanmean(values):
    values = np.asarray(values, np.float64)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


@dataclasses.dataclass
class SegmentationResult:
    """Metrics of an evaluation; fractions (0-1), printed as percentages like mmseg's log.

    `iou[c]` and `accuracy[c]` are NaN for a class absent from labels and predictions
    (accuracy: absent from the labels); the means skip NaNs, as mmseg's `nanmean`.
    """

    class_names: tuple
    iou: np.ndarray
    accuracy: np.ndarray
    aacc: float
    images: int
    pixels: int
    seconds_per_image: float | None = None
    description: str = ""

    @property
    def miou(self):
        return _nanmean(self.iou)

    @property
    def macc(self):
        return _nanmean(self.accuracy)

    def summary(self):
        """`{"aAcc", "mIoU", "mAcc"}` in percent, rounded to 2 decimals as mmseg 1.x logs them."""
        return {
            "aAcc": round(self.aacc * 100, 2),
            "mIoU": round(self.miou * 100, 2),
            "mAcc": round(self.macc * 100, 2),
        }

    def to_dict(self):
        """Plain JSON-ready values (fractions; NaN as None)."""

        def clean(value):
            return None if value is None or not np.isfinite(value) else float(value)

        return {
            "aAcc": clean(self.aacc),
            "mIoU": clean(self.miou),
            "mAcc": clean(self.macc),
            "per_class": {
                name: {"IoU": clean(iou), "Acc": clean(accuracy)}
                for name, iou, accuracy in zip(
                    self.class_names, self.iou, self.accuracy, strict=True
                )
            },
            "images": self.images,
            "pixels": self.pixels,
            "seconds_per_image": clean(self.seconds_per_image),
            "description": self.description,
        }

    def save_json(self, path):
        """Writes `to_dict()` to `path` (a temporary file renamed into place)."""
        path = os.fspath(path)
        with atomic_write_path(path) as partial, open(partial, "w") as file:
            json.dump(self.to_dict(), file, indent=2)
        return path

    def __str__(self):
        width = max([len("Class")] + [len(name) for name in self.class_names])

        def percent(value):
            return "  nan" if not np.isfinite(value) else f"{value * 100:5.2f}"

        rule = f"+-{'-' * width}-+-------+-------+"
        lines = ["per class results:", rule, f"| {'Class':^{width}} |  IoU  |  Acc  |", rule]
        for name, iou, accuracy in zip(self.class_names, self.iou, self.accuracy, strict=True):
            lines.append(f"| {name:^{width}} | {percent(iou)} | {percent(accuracy)} |")
        lines += [rule, "Summary:", "+-------+-------+-------+", "|  aAcc |  mIoU |  mAcc |"]
        lines.append("+-------+-------+-------+")
        lines.append(f"| {percent(self.aacc)} | {percent(self.miou)} | {percent(self.macc)} |")
        lines.append("+-------+-------+-------+")
        footer = f"{self.images} images"
        if self.seconds_per_image is not None:
            footer += f", {self.seconds_per_image:.3f} s per image"
        if self.description:
            footer += f"; {self.description}"
        lines.append(footer)
        return "\n".join(lines)

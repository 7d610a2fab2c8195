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
from keras_danet.constants import IGNORE_INDEX
from keras_danet.data.images import fractional_values, listed

METRICS = ("mIoU", "mDice", "mFscore")


def _check_metrics(metrics):
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    unknown = [name for name in metrics if name not in METRICS]
    if unknown or not metrics:
        raise ValueError(f"Unknown metrics {unknown or list(metrics)}; known: {list(METRICS)}.")
    return metrics


class SegmentationMetrics:
    """Accumulates predictions against labels; `result()` gives mmseg's metrics.

    `metrics` are mmseg's `iou_metrics`: "mIoU" (IoU and accuracy), "mDice" (Dice and
    accuracy), "mFscore" (F-score with `beta`, precision and recall). `nan_to_num` replaces
    the NaN of a class absent from labels and predictions, as mmseg's option (before the
    means, so the means count it).

    Example:
    >>> metrics = SegmentationMetrics(num_classes=19, metrics=["mIoU", "mDice"])
    >>> metrics.update(prediction, label)           # (H, W) class maps, or batches of them
    >>> metrics.result().miou
    """

    def __init__(
        self,
        num_classes,
        class_names=None,
        ignore_index=IGNORE_INDEX,
        metrics=("mIoU",),
        beta=1,
        nan_to_num=None,
    ):
        self.num_classes = int(num_classes)
        if class_names is not None and len(class_names) != self.num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes.")
        self.class_names = tuple(class_names or (f"class_{i}" for i in range(self.num_classes)))
        self.ignore_index = ignore_index
        self.metrics = _check_metrics(metrics)
        self.beta = float(beta)
        self.nan_to_num = None if nan_to_num is None else float(nan_to_num)
        self.reset()

    def reset(self):
        # confusion[label, prediction]; a labelled pixel predicted outside the classes (255
        # padding, another class set, a user's post-processing) has no column, but mmseg
        # still counts it in its label's area: `outside_predictions[label]`.
        self.confusion = np.zeros((self.num_classes, self.num_classes), np.int64)
        self.outside_predictions = np.zeros(self.num_classes, np.int64)
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
        fractional = fractional_values(labels)
        if fractional.size:
            raise ValueError(
                f"labels hold {listed(fractional)}, not class indices: labels are whole "
                f"numbers 0-{self.num_classes - 1} and {self.ignore_index} (a label map "
                "resized with interpolation needs nearest-neighbour instead)."
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
        # As mmseg's `torch.histc(min=0, max=C - 1)`: a prediction outside the classes is in
        # neither the predicted area nor the intersection, its label still in the label area
        # (so in the union): the pixel counts as wrong.
        inside = (predictions >= 0) & (predictions < self.num_classes)
        self.confusion += np.bincount(
            labels[inside] * self.num_classes + predictions[inside],
            minlength=self.num_classes**2,
        ).reshape(self.num_classes, self.num_classes)
        self.outside_predictions += np.bincount(labels[~inside], minlength=self.num_classes)
        return self

    def result(self, **details):
        """The `SegmentationResult` of everything added so far."""
        intersection = np.diag(self.confusion).astype(np.float64)
        label_area = (self.confusion.sum(1) + self.outside_predictions).astype(np.float64)
        predicted_area = self.confusion.sum(0).astype(np.float64)
        union = label_area + predicted_area - intersection
        beta2 = self.beta**2
        with np.errstate(divide="ignore", invalid="ignore"):  # absent classes: NaN, as mmseg
            precision = intersection / predicted_area
            recall = intersection / label_area
            values = dict(
                iou=intersection / union,
                accuracy=recall,
                dice=2 * intersection / (predicted_area + label_area),
                precision=precision,
                recall=recall,
                fscore=(1 + beta2) * precision * recall / (beta2 * precision + recall),
                aacc=intersection.sum() / label_area.sum(),
            )
        if self.nan_to_num is not None:
            values = {k: np.nan_to_num(v, nan=self.nan_to_num) for k, v in values.items()}
        values["aacc"] = float(values["aacc"])
        return SegmentationResult(
            class_names=self.class_names,
            images=self.images,
            pixels=int(label_area.sum()),
            metrics=self.metrics,
            beta=self.beta,
            **values,
            **details,
        )


def _nanmean(values):
    values = np.asarray(values, np.float64)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


# Per-class columns of each metric, in the order mmseg's IoUMetric fills its table.
_COLUMNS = {
    "mIoU": ("IoU", "Acc"),
    "mDice": ("Dice", "Acc"),
    "mFscore": ("Fscore", "Precision", "Recall"),
}
_FIELDS = {
    "IoU": "iou",
    "Acc": "accuracy",
    "Dice": "dice",
    "Fscore": "fscore",
    "Precision": "precision",
    "Recall": "recall",
}


@dataclasses.dataclass
class SegmentationResult:
    """Metrics of an evaluation; fractions (0-1), printed as percentages like mmseg's log.

    Per class: `iou`, `accuracy` (= `recall`), `dice`, `precision`, `fscore` (with `beta`),
    whichever `metrics` were asked for; NaN for a class absent from labels and predictions
    (accuracy and recall: absent from the labels; precision: never predicted), unless
    `nan_to_num` was given. The means skip NaNs, as mmseg's `nanmean`.
    """

    class_names: tuple
    iou: np.ndarray
    accuracy: np.ndarray
    aacc: float
    images: int
    pixels: int
    seconds_per_image: float | None = None
    description: str = ""
    dice: np.ndarray | None = None
    precision: np.ndarray | None = None
    recall: np.ndarray | None = None
    fscore: np.ndarray | None = None
    metrics: tuple = ("mIoU",)
    beta: float = 1.0

    @property
    def miou(self):
        return _nanmean(self.iou)

    @property
    def macc(self):
        return _nanmean(self.accuracy)

    @property
    def mdice(self):
        return _nanmean(self.dice)

    @property
    def mfscore(self):
        return _nanmean(self.fscore)

    def columns(self):
        """The per-class metrics asked for, in mmseg's order: e.g. ("IoU", "Acc", "Dice")."""
        names = []
        for metric in self.metrics:
            names += [name for name in _COLUMNS[metric] if name not in names]
        return tuple(names)

    def per_class(self, column):
        """The per-class array of a column name ("IoU", "Acc", "Dice", "Fscore", ...)."""
        return np.asarray(getattr(self, _FIELDS[column]), np.float64)

    def _means(self):
        return {"aAcc": self.aacc} | {f"m{c}": _nanmean(self.per_class(c)) for c in self.columns()}

    def summary(self):
        """`{"aAcc", "mIoU", "mAcc", ...}` in percent, rounded to 2 decimals as mmseg 1.x logs."""
        return {name: round(value * 100, 2) for name, value in self._means().items()}

    def to_dict(self):
        """Plain JSON-ready values (fractions; NaN as None)."""

        def clean(value):
            return None if value is None or not np.isfinite(value) else float(value)

        columns = self.columns()
        per_class = {
            name: {column: clean(self.per_class(column)[index]) for column in columns}
            for index, name in enumerate(self.class_names)
        }
        return {name: clean(value) for name, value in self._means().items()} | {
            "per_class": per_class,
            "metrics": list(self.metrics),
            **({"beta": self.beta} if "mFscore" in self.metrics else {}),
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
        # mmseg's two tables (prettytable): per class, then the summary.
        columns = self.columns()
        width = max([len("Class")] + [len(name) for name in self.class_names])
        widths = [max(len(column), 6) for column in columns]  # "100.00"

        def percent(value, size):
            text = "nan" if not np.isfinite(value) else f"{value * 100:.2f}"
            return f"{text:^{size}}"

        def table(header, rows, sizes):
            rule = "+" + "+".join("-" * (size + 2) for size in sizes) + "+"
            lines = [
                rule,
                "| " + " | ".join(f"{h:^{w}}" for h, w in zip(header, sizes, strict=True)) + " |",
                rule,
            ]
            lines += ["| " + " | ".join(row) + " |" for row in rows]
            return lines + [rule]

        rows = [
            [f"{name:^{width}}"]
            + [percent(self.per_class(c)[i], w) for c, w in zip(columns, widths, strict=True)]
            for i, name in enumerate(self.class_names)
        ]
        lines = ["per class results:"] + table(["Class", *columns], rows, [width, *widths])
        means = self._means()
        sizes = [max(len(name), 6) for name in means]
        summary = [percent(value, size) for value, size in zip(means.values(), sizes, strict=True)]
        lines += ["Summary:"] + table(list(means), [summary], sizes)
        footer = f"{self.images} images"
        if self.seconds_per_image is not None:
            footer += f", {self.seconds_per_image:.3f} s per image"
        if self.description:
            footer += f"; {self.description}"
        lines.append(footer)
        return "\n".join(lines)

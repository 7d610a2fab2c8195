"""One pass over a dataset that reports every problem at once, with class pixel counts."""

import concurrent.futures
import dataclasses

import numpy as np

from keras_danet.constants import IGNORE_INDEX
from keras_danet.data.images import DataError, read_image, read_label


@dataclasses.dataclass
class DatasetReport:
    """What `SegmentationDataset.check()` found.

    `problems` lists `(file, message)`; `pixel_counts[c]` counts class c's pixels over the
    readable label maps, `ignored_pixels` the 255s. `ok` is True when nothing is wrong.
    """

    name: str
    class_names: tuple
    images: int
    problems: list
    pixel_counts: np.ndarray
    ignored_pixels: int

    @property
    def ok(self):
        return not self.problems

    @property
    def frequencies(self):
        """Each class's share of the labelled pixels."""
        total = self.pixel_counts.sum()
        return self.pixel_counts / total if total else self.pixel_counts.astype(float)

    def __str__(self):
        lines = [
            f"{self.name}: {self.images} images, {len(self.problems)} problems, "
            f"{self.pixel_counts.sum():,} labelled and {self.ignored_pixels:,} ignored pixels"
        ]
        lines += [f"  problem: {message}" for _, message in self.problems[:50]]
        if len(self.problems) > 50:
            lines.append(f"  ... and {len(self.problems) - 50} more problems")
        width = max(len(name) for name in self.class_names)
        lines.append(f"  {'class':<{width}}  pixels share")
        for name, count, share in zip(
            self.class_names, self.pixel_counts, self.frequencies, strict=True
        ):
            flag = "  (absent)" if count == 0 else ""
            lines.append(f"  {name:<{width}}  {share:6.2%}{flag}")
        return "\n".join(lines)


def _scan(dataset, index):
    image_path, label_path = dataset.files[index]
    problems = []
    try:
        image = read_image(image_path)
    except DataError as error:
        problems.append((image_path, str(error)))
        image = None
    try:
        label = read_label(label_path, reduce_zero_label=dataset.reduce_zero_label)
    except DataError as error:
        return problems + [(label_path, str(error))], None
    if image is not None and image.shape[:2] != label.shape:
        problems.append(
            (
                label_path,
                f"{label_path} is {label.shape[0]}x{label.shape[1]} but its image "
                f"{image_path} is {image.shape[0]}x{image.shape[1]}.",
            )
        )
    counts = np.bincount(label.ravel(), minlength=256)
    known = dataset.source_info.num_classes  # checked before a class subset maps them
    bad = np.flatnonzero(counts[known:IGNORE_INDEX])
    if bad.size:
        values = ", ".join(str(v + known) for v in bad[:10])
        problems.append(
            (
                label_path,
                f"{label_path} has label values {values}, but the dataset has "
                f"{known} classes (and {IGNORE_INDEX} for ignored pixels).",
            )
        )
    if dataset.label_map is not None:
        counts = np.bincount(dataset.label_map[label].ravel(), minlength=256)
    return problems, counts


def check_dataset(dataset, progress=True):
    """Reads every image and label map of `dataset`; see `SegmentationDataset.check`."""
    from tqdm.auto import tqdm  # reads TQDM_* settings when imported

    problems, counts = [], np.zeros(256, np.int64)
    workers = max(int(getattr(dataset, "workers", 1) or 1), 1)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        results = pool.map(lambda i: _scan(dataset, i), range(len(dataset.files)))
        for found, sample_counts in tqdm(
            results, total=len(dataset.files), desc=f"checking {dataset.name}", disable=not progress
        ):
            problems += found
            if sample_counts is not None:
                counts += sample_counts
    return DatasetReport(
        name=dataset.name,
        class_names=dataset.info.class_names,
        images=len(dataset.files),
        problems=problems,
        pixel_counts=counts[: dataset.num_classes].copy(),
        ignored_pixels=int(counts[IGNORE_INDEX]),
    )

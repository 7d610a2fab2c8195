"""`SegmentationDataset`: images and label maps as a `fit`-ready `keras.utils.PyDataset`,
augmented as mmseg's pipeline for training, checked by `check()`. `datasets.py` makes one
for each dataset layout."""

import os

import keras
import numpy as np

from keras_danet import distributed
from keras_danet.data.check import check_dataset
from keras_danet.data.images import DataError, read_image, read_label


class SegmentationDataset(keras.utils.PyDataset):
    """Images and label maps, read and augmented as mmseg does, in batches for `fit`.

    Made by `cityscapes()`, `ade20k()`, `voc12aug()` or `folder()`. With an `augmentation`
    (the training splits' default) each batch holds `batch_size` random crops drawn by
    mmseg's training pipeline: float32 RGB images `(batch, crop_h, crop_w, 3)` and uint8
    label maps, 255 where ignored; the order is reshuffled every epoch. Without one, batches
    hold whole images at their original size (one per batch unless all sizes agree), for
    validation and for `keras_danet.evaluate`, which reads `sample(i)` directly.

    Every random choice comes from `seed`, the epoch and the batch index, so the batches are
    the same however many `workers` (threads; OpenCV releases Python's lock) prepare them.

    `classes` trains or evaluates on a subset or re-ordering of the dataset's classes, as
    mmseg's `metainfo=dict(classes=...)`: label maps are read and checked against all the
    dataset's classes, then each chosen class takes its index in `classes` and every other
    class becomes 255 (ignored); `info` then holds the chosen names and their colours.

    Example:
    >>> train = keras_danet.data.cityscapes("data/cityscapes", "train", batch_size=2)
    >>> model.fit(train, epochs=10)
    """

    def __init__(
        self,
        files,
        info,
        *,
        reduce_zero_label=False,
        augmentation=None,
        batch_size=1,
        seed=0,
        workers=None,
        max_queue_size=10,
        name="dataset",
        classes=None,
    ):
        if workers is None:
            workers = min(os.cpu_count() or 1, 8)
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=max_queue_size)
        if not files:
            raise DataError(f"{name} has no images.")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        self.files = list(files)
        self.source_info = info
        self.classes = None if classes is None else tuple(classes)
        self.info, self.label_map = (info, None) if classes is None else info.subset(classes)
        self.reduce_zero_label = bool(reduce_zero_label)
        self.augmentation = augmentation
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.name = name
        self.epoch = 0
        # (rank, processes, even): the part one of several processes reads (`fit` under
        # torchrun, keras_danet.distributed); (0, 1, True) in a single process.
        self._shard = (0, 1, True)
        if augmentation is not None and len(self.files) < self.batch_size:
            raise DataError(
                f"{name} has {len(self.files)} images, fewer than one batch of {batch_size}."
            )

    @property
    def num_classes(self):
        return self.info.num_classes

    def __len__(self):
        count = len(self._shard_indices(np.arange(len(self.files))))
        if self.augmentation is not None:  # whole batches only: every step has one shape
            return count // self.batch_size
        return -(-count // self.batch_size)

    def sample(self, index):
        """`(image, label)` number `index` as stored: RGB uint8 and uint8 class map, checked."""
        image_path, label_path = self.files[index]
        image = read_image(image_path)
        label = read_label(
            label_path,
            num_classes=self.source_info.num_classes,
            reduce_zero_label=self.reduce_zero_label,
            image_shape=image.shape,
        )
        if self.label_map is not None:
            label = self.label_map[label]
        return image, label

    def _order(self):
        if self.augmentation is None:
            order = np.arange(len(self.files))
        else:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.files))
        return self._shard_indices(order)

    def _shard_indices(self, order):
        rank, processes, even = self._shard
        if processes == 1:
            return order
        return order[distributed.shard_indices(len(order), rank, processes, even=even)]

    def sharded(self, rank, processes, *, even=True):
        """The part of each epoch that process `rank` of `processes` reads, as PyTorch's
        `DistributedSampler`: the epoch's order (shuffled as in one process), every
        `processes`-th image from `rank`, wrapped around with `even` so that every process
        has as many batches. `fit` under torchrun calls it; `batch_size` is per process."""
        copy = self.with_options()
        copy.epoch = self.epoch
        copy._shard = (int(rank), int(processes), bool(even))
        return copy

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of a {len(self)}-batch dataset")
        chosen = self._order()[index * self.batch_size : (index + 1) * self.batch_size]
        samples = [self.sample(int(i)) for i in chosen]
        if self.augmentation is not None:
            key = [self.seed, self.epoch, index]
            rank, processes, _ = self._shard
            if processes > 1:  # each process draws its own crops and flips
                key.append(rank)
            rng = np.random.default_rng(key)
            samples = [self.augmentation(image, label, rng) for image, label in samples]
        shapes = {image.shape for image, _ in samples}
        if len(shapes) > 1:
            names = ", ".join(self.files[int(i)][0] for i in chosen)
            raise DataError(
                f"{names} differ in size ({sorted(shapes)}) and cannot share a batch: use "
                "batch_size=1 for whole images, or an augmentation that crops."
            )
        images = np.stack([image for image, _ in samples])
        labels = np.stack([label for _, label in samples])
        return images, labels

    def on_epoch_end(self):
        self.epoch += 1

    def with_options(self, **changes):
        """A copy with other options: `train.with_options(batch_size=4, seed=1)`."""
        options = dict(
            reduce_zero_label=self.reduce_zero_label,
            augmentation=self.augmentation,
            batch_size=self.batch_size,
            seed=self.seed,
            workers=self.workers,
            max_queue_size=self.max_queue_size,
            name=self.name,
            classes=self.classes,
        )
        unknown = set(changes) - set(options)
        if unknown:
            raise TypeError(f"Unknown options {sorted(unknown)}; known: {sorted(options)}.")
        options.update(changes)
        return SegmentationDataset(self.files, self.source_info, **options)

    def check(self, progress=True):
        """Reads every image and label map once; returns a `DatasetReport` of all problems."""
        return check_dataset(self, progress=progress)

    def __repr__(self):
        mode = "augmented crops" if self.augmentation is not None else "whole images"
        return (
            f"<SegmentationDataset {self.name}: {len(self.files)} images, "
            f"{self.num_classes} classes, {mode}, batch_size={self.batch_size}>"
        )

"""Data: datasets as `fit`-ready pipelines, mmseg's training augmentation, generated scenes.

OpenCV decodes and augments images: `pip install 'keras-danet[data]'`. Nothing here imports
it until an image is read.

Example:
>>> train = keras_danet.data.cityscapes("data/cityscapes", "train", batch_size=2)
>>> val = keras_danet.data.cityscapes("data/cityscapes", "val")
>>> model.fit(train, validation_data=val, epochs=10)
"""

from keras_danet.data.augmentation import Augmentation
from keras_danet.data.check import DatasetReport
from keras_danet.data.datasets import (
    SegmentationDataset,
    ade20k,
    cityscapes,
    convert_cityscapes_label_ids,
    folder,
    voc12aug,
)
from keras_danet.data.images import DataError, read_image, read_label
from keras_danet.data.synthetic import save_synthetic_scenes, synthetic_scenes

__all__ = [
    "Augmentation",
    "DataError",
    "DatasetReport",
    "SegmentationDataset",
    "ade20k",
    "cityscapes",
    "convert_cityscapes_label_ids",
    "folder",
    "read_image",
    "read_label",
    "save_synthetic_scenes",
    "synthetic_scenes",
    "voc12aug",
]

"""Presets: every set of weights by name (mmseg's DANet checkpoints, the bundled demo, the
ImageNet backbones), the preset folder format, and sharing a preset on the Hugging Face Hub."""

from keras_danet.dataset_info import DATASETS, DatasetInfo
from keras_danet.presets import loading, saving  # noqa: F401  (the models call them)
from keras_danet.presets.files import PresetError
from keras_danet.presets.preset import Preset, TestSettings
from keras_danet.presets.sources import BundledFolder, HubRepo, LocalFolder, MmsegCheckpoint
from keras_danet.presets.table import ALIASES, PRESETS, list_presets
from keras_danet.presets.upload import upload_preset

__all__ = [
    "ALIASES",
    "BundledFolder",
    "DATASETS",
    "DatasetInfo",
    "HubRepo",
    "LocalFolder",
    "MmsegCheckpoint",
    "PRESETS",
    "Preset",
    "PresetError",
    "TestSettings",
    "list_presets",
    "upload_preset",
]

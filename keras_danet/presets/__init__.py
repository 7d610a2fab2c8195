"""Presets: the mmseg DANet checkpoints by name, and the preset folder format."""

from keras_danet.dataset_info import DATASETS, DatasetInfo
from keras_danet.presets.files import PresetError
from keras_danet.presets.table import ALIASES, PRESETS, Preset, list_presets

__all__ = ["ALIASES", "DATASETS", "DatasetInfo", "PRESETS", "Preset", "PresetError", "list_presets"]

"""Presets: the mmseg DANet checkpoints by name, and the preset folder format."""

from keras_danet.presets.datasets import DATASETS, Dataset
from keras_danet.presets.files import PresetError
from keras_danet.presets.table import ALIASES, PRESETS, Preset, list_presets

__all__ = ["ALIASES", "DATASETS", "Dataset", "PRESETS", "Preset", "PresetError", "list_presets"]

"""keras-danet: DANet (Dual Attention Network) for Keras 3, faithful to mmsegmentation."""

from keras_danet import config, data, distributed, training
from keras_danet.convert.mmseg import convert_mmseg_checkpoint
from keras_danet.deployment import export
from keras_danet.evaluation import evaluate
from keras_danet.layers import ChannelAttention, PositionAttention
from keras_danet.models import DANet, ResNetV1c
from keras_danet.presets import Preset, PresetError, list_presets, upload_preset
from keras_danet.version import __version__

__all__ = [
    "ChannelAttention",
    "DANet",
    "PositionAttention",
    "Preset",
    "PresetError",
    "ResNetV1c",
    "__version__",
    "config",
    "convert_mmseg_checkpoint",
    "data",
    "distributed",
    "evaluate",
    "export",
    "list_presets",
    "training",
    "upload_preset",
]

"""Data: dataset readers, mmseg's training augmentation, and `fit`-ready pipelines."""

from keras_danet.data.synthetic import synthetic_scenes

__all__ = ["synthetic_scenes"]

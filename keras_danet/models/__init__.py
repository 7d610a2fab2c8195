from keras_danet.models.danet import DANet
from keras_danet.models.resnet_v1c import ResNetV1c

__all__ = ["DANet", "ResNetV1c"]

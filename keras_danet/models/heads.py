"""The DA head and the FCN auxiliary head of mmseg's DANet, as functional graph pieces."""

import keras

from keras_danet.layers import ChannelAttention, Conv2D, PositionAttention
from keras_danet.layers.torch_initializers import torch_conv_initializers
from keras_danet.models.resnet_v1c import batch_norm, conv

# The four classifiers, the only layers whose shape depends on the number of classes.
CLASSIFIER_LAYERS = ("classifier", "pam_classifier", "cam_classifier", "aux_classifier")


# Initializers are made per layer (see `conv_initializer`). mmseg draws `conv_seg` (the main
# and auxiliary classifiers) from N(0, 0.01), bias 0; the PAM and CAM classifiers keep
# PyTorch's default Conv2d init (`torch_conv_initializers`).
def _conv_seg_initializer():
    return keras.initializers.RandomNormal(stddev=0.01)


def conv_module(x, filters, name, synchronized=False):
    """mmcv's ConvModule: a bias-free 3x3 conv, BatchNorm and ReLU."""
    x = conv(x, filters, 3, f"{name}_conv")
    return keras.layers.ReLU(name=f"{name}_relu")(batch_norm(x, f"{name}_bn", synchronized))


def classifier(x, num_classes, dropout, name, initializer=None):
    """Channel-wise dropout (PyTorch's Dropout2d) then a 1x1 conv with bias.

    `initializer` draws the kernel (the bias starts at 0); without one, the kernel and the
    bias get PyTorch's default Conv2d init.
    """
    bias_initializer = "zeros"
    if initializer is None:
        initializer, bias_initializer = torch_conv_initializers(fan_in=x.shape[-1])
    prefix = name.removesuffix("classifier")
    x = keras.layers.SpatialDropout2D(dropout, name=f"{prefix}dropout")(x)
    return Conv2D(
        num_classes,
        1,
        kernel_initializer=initializer,
        bias_initializer=bias_initializer,
        name=name,
    )(x)


def da_head(features, channels, key_channels, synchronized=False):
    """DANet's dual attention branches; returns the PAM and CAM features after their out-convs."""
    pam = conv_module(features, channels, "pam_in", synchronized)
    pam = PositionAttention(key_channels, name="pam")(pam)
    pam = conv_module(pam, channels, "pam_out", synchronized)

    cam = conv_module(features, channels, "cam_in", synchronized)
    cam = ChannelAttention(name="cam")(cam)
    cam = conv_module(cam, channels, "cam_out", synchronized)
    return pam, cam


def main_classifier(pam, cam, num_classes, dropout):
    """The sum of both branches and mmseg's `conv_seg`: the logits used at test time."""
    fused = keras.layers.Add(name="fuse")([pam, cam])
    return classifier(fused, num_classes, dropout, "classifier", _conv_seg_initializer())


def training_heads(
    head_channels, stage3_channels, num_classes, aux_channels, dropout, synchronized=False
):
    """The outputs only the training loss uses: PAM and CAM logits and the FCN auxiliary head.

    A model of its own, so that inference never computes them. Inputs: the PAM and CAM
    features and the backbone's stage-3 output; outputs: `{"pam", "cam", "aux"}` logits.
    """
    pam = keras.Input((None, None, head_channels), name="pam_features")
    cam = keras.Input((None, None, head_channels), name="cam_features")
    stage3 = keras.Input((None, None, stage3_channels), name="stage3_features")
    # mmseg's FCNHead with one conv and no input concat.
    aux = conv_module(stage3, aux_channels, "aux", synchronized)
    outputs = {
        "pam": classifier(pam, num_classes, dropout, "pam_classifier"),
        "cam": classifier(cam, num_classes, dropout, "cam_classifier"),
        "aux": classifier(aux, num_classes, dropout, "aux_classifier", _conv_seg_initializer()),
    }
    return keras.Model([pam, cam, stage3], outputs, name="training_heads")

"""PyTorch's default initialisation of `nn.Conv2d`, for the layers mmseg leaves at it."""

import math

import keras


def torch_conv_initializers(fan_in):
    """`(kernel_initializer, bias_initializer)` of a fresh `torch.nn.Conv2d`.

    PyTorch draws the kernel from kaiming_uniform(a=sqrt(5)) and the bias from
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)); both are U(±1/sqrt(fan_in)), where fan_in is
    in_channels x kernel height x kernel width. mmseg keeps this init for PAM's query, key
    and value projections and for the PAM and CAM classifiers, so DANet trained from an
    ImageNet backbone starts where mmseg's does. A new pair per layer: an unseeded Keras
    initializer fixes its seed when made, so a shared one would repeat its draws.

    Example:
    >>> kernel_init, bias_init = torch_conv_initializers(fan_in=512)
    """
    bound = 1.0 / math.sqrt(fan_in)
    return (
        keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"),
        keras.initializers.RandomUniform(-bound, bound),
    )

"""The dilated ResNet-V1c backbone of mmsegmentation's DANet (`ResNetV1c`, "D8")."""

import keras

from keras_danet import distributed
from keras_danet.layers.batch_normalization import TorchBatchNormalization
from keras_danet.layers.conv2d import Conv2D
from keras_danet.models.freeing_functional import FreeingFunctional
from keras_danet.models.preset_metadata import PresetMetadata
from keras_danet.presets import PRESETS, PresetError, loading, registry, saving
from keras_danet.presets.preset import record_to_save

# Bottleneck blocks per stage: mmseg's 50 and 101, and timm's 14 (its resnet14t's layout),
# one block per stage for light experiments; no pretrained weights exist for it.
STAGE_BLOCKS = {14: (1, 1, 1, 1), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
# The depths mmseg's ResNet-V1c checkpoints can have, of those above.
MMSEG_DEPTHS = (50, 101)
# Stride and dilation of each stage for an output stride (mmseg's -D8 and -D16 variants).
_STRIDES_AND_DILATIONS = {
    8: ((1, 2, 1, 1), (1, 1, 2, 4)),
    16: ((1, 2, 2, 1), (1, 1, 1, 2)),
}
_BOTTLENECK_EXPANSION = 4


def conv_initializer():
    """mmseg's kaiming normal (fan_out) init, as torchvision's.

    A new instance per layer: a Keras initializer without a seed fixes one at construction,
    so a shared instance would give every conv of the same shape the same weights.
    """
    return keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")


def batch_norm(x, name, synchronized=False, gamma_initializer="ones"):
    """PyTorch's BatchNorm2d (see `TorchBatchNormalization`)."""
    return TorchBatchNormalization(
        gamma_initializer=gamma_initializer, synchronized=synchronized, name=name
    )(x)


def conv(x, filters, kernel_size, name, strides=1, dilation=1):
    """A bias-free conv padded as PyTorch pads it (`padding = dilation * (kernel_size // 2)`).

    A strided 3x3 conv gets explicit zeros on every side: Keras' "same" pads only the
    bottom/right of even inputs, which would shift the output by half a pixel against
    PyTorch. Stride-1 convs with padding = dilation are exactly "same".
    """
    padding = "same"
    if strides > 1 and kernel_size > 1:
        x = keras.layers.ZeroPadding2D(dilation * (kernel_size // 2), name=f"{name}_pad")(x)
        padding = "valid"
    return Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        dilation_rate=dilation,
        use_bias=False,
        kernel_initializer=conv_initializer(),
        name=name,
    )(x)


def _bottleneck(x, planes, strides, dilation, name, synchronized):
    """mmseg's pytorch-style Bottleneck: the stride sits on the 3x3 conv."""
    shortcut = x
    out_channels = planes * _BOTTLENECK_EXPANSION
    if strides != 1 or x.shape[-1] != out_channels:
        shortcut = conv(x, out_channels, 1, f"{name}_downsample_conv", strides=strides)
        shortcut = batch_norm(shortcut, f"{name}_downsample_bn", synchronized)
    x = conv(x, planes, 1, f"{name}_conv1")
    x = keras.layers.ReLU(name=f"{name}_relu1")(batch_norm(x, f"{name}_bn1", synchronized))
    x = conv(x, planes, 3, f"{name}_conv2", strides=strides, dilation=dilation)
    x = keras.layers.ReLU(name=f"{name}_relu2")(batch_norm(x, f"{name}_bn2", synchronized))
    x = conv(x, out_channels, 1, f"{name}_conv3")
    # mmseg's zero_init_residual: each block starts as the identity when trained from scratch.
    x = batch_norm(x, f"{name}_bn3", synchronized, gamma_initializer="zeros")
    x = keras.layers.Add(name=f"{name}_add")([x, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(x)


@registry.register_model
@keras.saving.register_keras_serializable(package="keras_danet")
class ResNetV1c(PresetMetadata, FreeingFunctional, keras.Model):
    """Dilated ResNet-V1c, the backbone of every mmseg DANet checkpoint.

    A deep stem (three 3x3 convs, `stem_channels // 2`, `stem_channels // 2`, `stem_channels`)
    and a max-pool, then four stages of bottlenecks. Stages 3 and 4 trade stride for dilation,
    so the output stride is 8 (or 16); with `contract_dilation` the first block of a dilated
    stage uses half the stage's dilation.

    Takes normalised NHWC images and returns the four stage outputs `[c1, c2, c3, c4]`
    (strides 4, 8, 8, 8 for output stride 8).

    Args:
        depth: 50 or 101 (mmseg's); 14, one bottleneck per stage, for light experiments
            and tests (a tiny-width train step traces and compiles in about half the time
            of depth 50's), without pretrained weights.
        output_stride: 8 (mmseg's "D8", all DANet checkpoints) or 16.
        stem_channels: width of the deep stem (mmseg's `stem_channels`).
        base_channels: bottleneck width of the first stage (mmseg's `base_channels`).
        contract_dilation: halve the dilation of each dilated stage's first block.
        synchronized_batch_norm: batch statistics over all replicas (mmseg's SyncBN; see
            `TorchBatchNormalization`).

    `ResNetV1c.from_preset("resnet50_v1c")` gives mmseg's ImageNet weights (converted from
    open-mmlab://resnet50_v1c); a DANet preset's name gives that DANet's backbone.

    Example:
    >>> backbone = keras_danet.ResNetV1c(depth=50)
    >>> c1, c2, c3, c4 = backbone(np.zeros((1, 64, 64, 3), "float32"))
    >>> c4.shape
    (1, 8, 8, 2048)
    >>> backbone = keras_danet.ResNetV1c.from_preset("resnet101_v1c")
    """

    def __init__(
        self,
        depth=50,
        output_stride=8,
        stem_channels=64,
        base_channels=64,
        contract_dilation=True,
        synchronized_batch_norm=False,
        **kwargs,
    ):
        distributed.start()  # under torchrun: this process's GPU before any weight is made
        if depth not in STAGE_BLOCKS:
            raise ValueError(f"depth must be one of {sorted(STAGE_BLOCKS)}, got {depth!r}.")
        if output_stride not in _STRIDES_AND_DILATIONS:
            raise ValueError(f"output_stride must be 8 or 16, got {output_stride!r}.")
        strides, dilations = _STRIDES_AND_DILATIONS[output_stride]

        images = keras.Input((None, None, 3), name="images")
        x = images
        for index, width in enumerate((stem_channels // 2, stem_channels // 2, stem_channels)):
            x = conv(x, width, 3, f"stem_conv{index + 1}", strides=2 if index == 0 else 1)
            x = keras.layers.ReLU(name=f"stem_relu{index + 1}")(
                batch_norm(x, f"stem_bn{index + 1}", synchronized_batch_norm)
            )
        # Zero padding equals PyTorch's -inf padding here: the input is post-ReLU.
        x = keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
        x = keras.layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)

        features = []
        for stage, blocks in enumerate(STAGE_BLOCKS[depth]):
            planes = base_channels * 2**stage
            dilation = dilations[stage]
            for block in range(blocks):
                first_dilation = dilation // 2 if contract_dilation and dilation > 1 else dilation
                x = _bottleneck(
                    x,
                    planes,
                    strides=strides[stage] if block == 0 else 1,
                    dilation=first_dilation if block == 0 else dilation,
                    name=f"layer{stage + 1}_block{block}",
                    synchronized=synchronized_batch_norm,
                )
            features.append(x)

        super().__init__(inputs=images, outputs=features, **kwargs)
        self.depth = depth
        self.output_stride = output_stride
        self.stem_channels = stem_channels
        self.base_channels = base_channels
        self.contract_dilation = contract_dilation
        self.synchronized_batch_norm = synchronized_batch_norm
        # What the weights came with; from_preset fills it, save_to_preset writes it back.
        self.preset_metadata = {}

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "depth": self.depth,
            "output_stride": self.output_stride,
            "stem_channels": self.stem_channels,
            "base_channels": self.base_channels,
            "contract_dilation": self.contract_dilation,
            "synchronized_batch_norm": self.synchronized_batch_norm,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # Every preset by name (aliases too): `ResNetV1c.presets["resnet50_v1c"]`.
    presets = PRESETS

    @classmethod
    def from_preset(cls, handle, *, mirror=None, cache_dir=None, progress=True, num_classes=None):
        """A ResNetV1c with pretrained weights: a backbone preset's, or a DANet preset's
        backbone. `handle`, `mirror`, `cache_dir` and `progress` as in `DANet.from_preset`.

        Example:
        >>> backbone = keras_danet.ResNetV1c.from_preset("resnet50_v1c")
        """
        if num_classes is not None:
            raise TypeError(
                f"{cls.__name__}.from_preset takes no num_classes: it has no classifier."
            )
        model, name, _ = loading.load_preset(  # a backbone alone is not trained: no recipe
            handle, mirror=mirror, cache_dir=cache_dir, progress=progress
        )
        backbone = getattr(model, "backbone", None)
        if not isinstance(model, cls) and isinstance(backbone, cls):
            # The backbone of a DANet preset: a part of it, not the preset itself.
            license = model.preset_metadata.get("license")
            backbone.preset_metadata = {"pretrained": name, "license": license}
            return backbone
        if not isinstance(model, cls):
            raise PresetError(f"{name} holds a {type(model).__name__}, not a {cls.__name__}.")
        return model

    def save_to_preset(self, directory, metadata=None, *, overwrite=False):
        """Writes this backbone as a preset folder that `from_preset(directory)` loads, as
        `DANet.save_to_preset` does.

        Example:
        >>> backbone.save_to_preset("my_backbone")
        """
        record = record_to_save(self.preset_metadata, directory, metadata or {})
        return saving.save_to_preset(self, directory, metadata=record, overwrite=overwrite)

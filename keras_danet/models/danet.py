"""DANet: dilated ResNet-V1c, the dual attention head and the FCN auxiliary head."""

import keras

from keras_danet.layers import BilinearResize
from keras_danet.models.heads import da_head, main_classifier, training_heads
from keras_danet.models.resnet_v1c import ResNetV1c
from keras_danet.presets.table import PRESETS

# mmseg's data preprocessor, RGB order, 0-255 scale.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
# The four classifiers, the only layers whose shape depends on the number of classes.
CLASSIFIER_LAYERS = ("classifier", "pam_classifier", "cam_classifier", "aux_classifier")


@keras.saving.register_keras_serializable(package="keras_danet")
class DANet(keras.Model):
    """Dual Attention Network (Fu et al., CVPR 2019), exactly as mmsegmentation builds it.

    Takes RGB images, float 0-255, NHWC, of any size; the mmseg normalisation happens inside.
    Returns the main (PAM + CAM) logits, bilinearly resized to the input size:
    `(batch, height, width, num_classes)`. The PAM, CAM and auxiliary logits, used by the
    training loss, come from `with_all_outputs()`.

    The defaults build mmseg's `danet_r50-d8` for Cityscapes (49,846,574 trainable parameters).

    Args:
        num_classes: classes of the four classifiers (Cityscapes 19, ADE20K 150, VOC 21).
        depth: ResNet-V1c depth, 50 or 101.
        output_stride: 8 (all mmseg DANet checkpoints) or 16.
        stem_channels, base_channels: backbone widths (mmseg's names).
        head_channels: DA head width (mmseg's `channels`, 512).
        pam_channels: PAM query/key width (64).
        aux_channels: FCN auxiliary head width (256).
        dropout: channel dropout before each classifier (0.1).
        align_corners: PyTorch's align_corners for the logits resize (True in the 769x769 configs).
        mean, std: per-channel RGB normalisation, 0-255 scale.

    Example:
    >>> model = keras_danet.DANet(num_classes=19, depth=50)
    >>> logits = model.predict(images)            # (batch, H, W, 19)
    >>> labels = logits.argmax(-1)
    """

    # The mmseg checkpoints by name (aliases work too): `DANet.presets["danet_r50_cityscapes"]`.
    presets = PRESETS

    def __init__(
        self,
        num_classes=19,
        depth=50,
        output_stride=8,
        stem_channels=64,
        base_channels=64,
        head_channels=512,
        pam_channels=64,
        aux_channels=256,
        dropout=0.1,
        align_corners=False,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        **kwargs,
    ):
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")
        mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"mean and std need 3 values, std positive; got {mean}, {std}.")

        kwargs.setdefault("name", "danet")
        images = keras.Input((None, None, 3), name="images")
        # Normalising in float32 even under mixed precision: 0-255 loses digits in float16.
        normalized = keras.layers.Normalization(
            mean=mean, variance=[s * s for s in std], dtype="float32", name="normalize"
        )(images)
        backbone = ResNetV1c(
            depth=depth,
            output_stride=output_stride,
            stem_channels=stem_channels,
            base_channels=base_channels,
            name="backbone",
        )
        _, _, stage3, stage4 = backbone(normalized)
        pam, cam = da_head(stage4, head_channels, pam_channels)
        logits = main_classifier(pam, cam, num_classes, dropout)
        # Resize in float32: these are the logits users argmax or softmax.
        outputs = BilinearResize(align_corners, dtype="float32", name="resize")([logits, images])
        super().__init__(inputs=images, outputs=outputs, **kwargs)

        self.backbone = backbone
        # Not in the inference graph above; tracked as an attribute, so its weights are the
        # model's (counted, trained, saved) while predict() never computes them.
        self.training_heads = training_heads(
            head_channels, stage3.shape[-1], num_classes, aux_channels, dropout
        )
        self._head_inputs = [pam, cam, stage3]
        self.num_classes = int(num_classes)
        self.depth = depth
        self.output_stride = output_stride
        self.stem_channels = stem_channels
        self.base_channels = base_channels
        self.head_channels = head_channels
        self.pam_channels = pam_channels
        self.aux_channels = aux_channels
        self.dropout = dropout
        self.align_corners = bool(align_corners)
        self.mean = mean
        self.std = std

    def with_all_outputs(self, resize_to_input=True):
        """A model sharing these weights that returns every head's logits.

        Its output is the dict `{"main", "pam", "cam", "aux"}`, each `(batch, H, W, classes)`,
        resized bilinearly to the input size (mmseg resizes all four before the loss) or, with
        `resize_to_input=False`, at the backbone's output stride.

        Example:
        >>> outputs = model.with_all_outputs()(images)
        >>> outputs["aux"].shape
        """
        outputs = {"main": self.get_layer("classifier").output}
        outputs.update(self.training_heads(self._head_inputs))
        if resize_to_input:
            outputs = {
                key: BilinearResize(self.align_corners, dtype="float32", name=f"{key}_resize")(
                    [value, self.input]
                )
                for key, value in outputs.items()
            }
        return keras.Model(self.input, outputs, name=f"{self.name}_all_outputs")

    @classmethod
    def from_preset(cls, handle, *, num_classes=None, mirror=None, cache_dir=None, progress=True):
        """Builds a DANet with pretrained weights.

        `handle` is a preset name or alias (`keras_danet.list_presets()`), a `Preset`, a preset
        folder, or `hf://org/repo[@revision]`. A named preset comes from the local cache, else
        from the Hugging Face Hub, else from the original mmseg checkpoint, downloaded (from
        `mirror` or $KERAS_DANET_MMSEG_MIRROR if set), verified by hash and converted into
        the cache ($KERAS_DANET_HOME, or `cache_dir`; converting needs PyTorch). Each step is
        logged at INFO level on the "keras_danet" logger.

        With `num_classes`, the four classifiers are initialised afresh for fine-tuning and
        every other weight is kept.

        Example:
        >>> model = keras_danet.DANet.from_preset("danet_r101_cityscapes")
        >>> model = keras_danet.DANet.from_preset("danet_r50_ade20k", num_classes=4)
        """
        from keras_danet.presets.loading import from_preset

        return from_preset(
            cls,
            handle,
            num_classes=num_classes,
            mirror=mirror,
            cache_dir=cache_dir,
            progress=progress,
        )

    def save_to_preset(self, directory, metadata=None):
        """Writes this model as a preset folder (config.json, model.weights.h5, metadata.json).

        Example:
        >>> model.save_to_preset("my_danet")
        >>> keras_danet.DANet.from_preset("my_danet")
        """
        from keras_danet.presets.saving import save_to_preset

        return save_to_preset(self, directory, metadata=metadata)

    def get_layer(self, name=None, index=None):
        """Finds a layer by name here, in the backbone or in the training heads.

        Layer names are unique across all three (`"pam"`, `"layer3_block2_conv1"`,
        `"aux_classifier"`...), so one lookup serves the converter, the attention-map tools
        and users.
        """
        if name is None or index is not None:
            return super().get_layer(name, index)
        for model in (super(), self.backbone, self.training_heads):
            try:
                return model.get_layer(name)
            except ValueError:
                continue
        raise ValueError(
            f"No layer named {name!r} in {self.name}, its backbone or its training heads."
        )

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "num_classes": self.num_classes,
            "depth": self.depth,
            "output_stride": self.output_stride,
            "stem_channels": self.stem_channels,
            "base_channels": self.base_channels,
            "head_channels": self.head_channels,
            "pam_channels": self.pam_channels,
            "aux_channels": self.aux_channels,
            "dropout": self.dropout,
            "align_corners": self.align_corners,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

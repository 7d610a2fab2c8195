"""DANet: dilated ResNet-V1c, the dual attention head and the FCN auxiliary head.

This file is the architecture and its presets. The training recipe (`compile`, `fit`) is
`training/recipe.py`, and `segment` and `export` are `models/inference_methods.py`: mixins
of the class below.
"""

import logging
import numbers

import keras

from keras_danet import distributed
from keras_danet.constants import IMAGENET_MEAN, IMAGENET_STD
from keras_danet.layers import BilinearResize, ImageNormalization
from keras_danet.models.freeing_functional import FreeingFunctional
from keras_danet.models.heads import CLASSIFIER_LAYERS, da_head, main_classifier, training_heads
from keras_danet.models.inference_methods import InferenceMethods
from keras_danet.models.preset_metadata import PresetMetadata
from keras_danet.models.resnet_v1c import ResNetV1c
from keras_danet.presets import PRESETS, PresetError, loading, registry, saving
from keras_danet.presets.preset import record_to_save, record_without_classes
from keras_danet.training.recipe import TrainingRecipe

logger = logging.getLogger("keras_danet")


def class_count(num_classes):
    """`num_classes` as an int; anything but a positive whole number (2.7, "x", True) is an
    error rather than being truncated."""
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, numbers.Real)
        or not float(num_classes).is_integer()
        or num_classes < 1
    ):
        raise ValueError(f"num_classes must be a positive whole number, got {num_classes!r}.")
    return int(num_classes)


def _pretrained_backbone(backbone):
    """`(ResNetV1c or None, what to record as its source)` for DANet's `backbone` argument."""
    if backbone is None:
        return None, None
    handle = None
    if not isinstance(backbone, ResNetV1c):
        if isinstance(backbone, keras.Model):
            raise TypeError(
                f"backbone must be a ResNetV1c or a preset of one, not a {type(backbone).__name__}."
            )
        handle, backbone = backbone, ResNetV1c.from_preset(backbone)
    record = backbone.preset_metadata
    fallback = str(handle) if handle is not None else f"ResNetV1c {backbone.name!r}"
    return backbone, record.get("preset") or record.get("pretrained") or fallback


def _backbone_widths(pretrained, **given):
    """depth, stem_channels and base_channels: as given, else the backbone's, else mmseg's."""
    defaults = {"depth": 50, "stem_channels": 64, "base_channels": 64}
    values = {}
    for key, value in given.items():
        theirs = getattr(pretrained, key) if pretrained is not None else None
        if value is not None and theirs is not None and value != theirs:
            raise ValueError(
                f"{key}={value!r}, but the backbone given has {key}={theirs!r}: leave {key} "
                "out, and the backbone's is used."
            )
        values[key] = next(v for v in (value, theirs, defaults[key]) if v is not None)
    return values["depth"], values["stem_channels"], values["base_channels"]


@registry.register_model
@keras.saving.register_keras_serializable(package="keras_danet")
class DANet(TrainingRecipe, InferenceMethods, PresetMetadata, FreeingFunctional, keras.Model):
    """Dual Attention Network (Fu et al., CVPR 2019), exactly as mmsegmentation builds it.

    Takes RGB images, float 0-255, NHWC, of any size; the mmseg normalisation happens inside.
    Returns the main (PAM + CAM) logits, bilinearly resized to the input size:
    `(batch, height, width, num_classes)`. The PAM, CAM and auxiliary logits, used by the
    training loss, come from `with_all_outputs()`.

    The defaults build mmseg's `danet_r50-d8` for Cityscapes (49,846,574 trainable parameters).

    Args:
        num_classes: classes of the four classifiers (Cityscapes 19, ADE20K 150, VOC 21).
        depth: ResNet-V1c depth, 50 or 101 (default 50, or the `backbone`'s); 14 for light
            experiments (`ResNetV1c`).
        output_stride: 8 (all mmseg DANet checkpoints) or 16.
        stem_channels, base_channels: backbone widths (mmseg's names; default 64, or the
            `backbone`'s).
        backbone: pretrained backbone weights to start from, as mmseg's recipe does: a
            `ResNetV1c` model or a preset of one ("resnet50_v1c", "resnet101_v1c": mmseg's
            ImageNet weights). The heads are initialised as mmseg initialises them. The
            weights are copied, so the config does not record them; `preset_metadata`
            does. (`backbone=ResNetV1c.from_preset(name, mirror=..., cache_dir=...)`
            passes loading options.)
        head_channels: DA head width (mmseg's `channels`, 512).
        pam_channels: PAM query/key width (64).
        aux_channels: FCN auxiliary head width (256).
        dropout: channel dropout before each classifier (0.1).
        align_corners: PyTorch's align_corners for the logits resize (True in the 769x769 configs).
        mean, std: per-channel RGB normalisation, 0-255 scale.
        synchronized_batch_norm: batch statistics over all replicas while training, as
            mmseg's SyncBN (processes under `torchrun` on PyTorch, TensorFlow distribution
            strategies; JAX's `DataParallel` uses the global batch anyway).

    Example:
    >>> model = keras_danet.DANet(num_classes=19, depth=50)
    >>> logits = model.predict(images)            # (batch, H, W, 19)
    >>> labels = logits.argmax(-1)
    >>> model = keras_danet.DANet(num_classes=6, backbone="resnet50_v1c")  # mmseg's start
    """

    def __init__(
        self,
        num_classes=19,
        depth=None,
        output_stride=8,
        stem_channels=None,
        base_channels=None,
        head_channels=512,
        pam_channels=64,
        aux_channels=256,
        dropout=0.1,
        align_corners=False,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        synchronized_batch_norm=False,
        backbone=None,
        **kwargs,
    ):
        distributed.start()  # under torchrun: this process's GPU before any weight is made
        num_classes = class_count(num_classes)
        pretrained_backbone, backbone_source = _pretrained_backbone(backbone)
        del backbone  # the name is ours below
        depth, stem_channels, base_channels = _backbone_widths(
            pretrained_backbone,
            depth=depth,
            stem_channels=stem_channels,
            base_channels=base_channels,
        )
        mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"mean and std need 3 values, std positive; got {mean}, {std}.")

        kwargs.setdefault("name", "danet")
        images = keras.Input((None, None, 3), name="images")
        # Normalising in float32 even under mixed precision: 0-255 loses digits in float16.
        normalized = ImageNormalization(mean, std, dtype="float32", name="normalize")(images)
        backbone = ResNetV1c(
            depth=depth,
            output_stride=output_stride,
            stem_channels=stem_channels,
            base_channels=base_channels,
            synchronized_batch_norm=synchronized_batch_norm,
            name="backbone",
        )
        _, _, stage3, stage4 = backbone(normalized)
        pam, cam = da_head(stage4, head_channels, pam_channels, synchronized_batch_norm)
        logits = main_classifier(pam, cam, num_classes, dropout)
        # Resize in float32: these are the logits users argmax or softmax.
        outputs = BilinearResize(align_corners, dtype="float32", name="resize")([logits, images])
        super().__init__(inputs=images, outputs=outputs, **kwargs)

        self.backbone = backbone
        # Not in the inference graph above; tracked as an attribute, so its weights are the
        # model's (counted, trained, saved) while predict() never computes them.
        self.training_heads = training_heads(
            head_channels,
            stage3.shape[-1],
            num_classes,
            aux_channels,
            dropout,
            synchronized_batch_norm,
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
        self.synchronized_batch_norm = bool(synchronized_batch_norm)
        # What the weights came with (class names, palette, test mode...): from_preset fills
        # it from metadata.json, save_to_preset writes it back.
        self.preset_metadata = {}
        if pretrained_backbone is not None:
            # Same depth and widths, so the same variables in the same order; the output
            # stride changes strides and dilations only, never a weight's shape.
            for ours, theirs in zip(backbone.weights, pretrained_backbone.weights, strict=True):
                ours.assign(theirs)
            self.preset_metadata = {"backbone": backbone_source}

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

    # Every preset by name (aliases too): `DANet.presets["danet_r50_cityscapes"]`.
    presets = PRESETS

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
        every other weight is kept (`reset_classifier`). A backbone preset
        ("resnet50_v1c") gives `DANet(num_classes=num_classes, backbone=handle)`.

        It comes compiled for a new run, with the preset's saved recipe, else mmseg's
        (`compile()`): `fit` sets the schedule's length, metrics count the model's classes,
        and the optimizer's state waits for the first step (none for segment or predict).

        Example:
        >>> model = keras_danet.DANet.from_preset("danet_r101_cityscapes")
        >>> model = keras_danet.DANet.from_preset("danet_r50_ade20k", num_classes=4)
        """
        model, name, recipe = loading.load_preset(
            handle, mirror=mirror, cache_dir=cache_dir, progress=progress
        )
        if isinstance(model, ResNetV1c):
            if num_classes is None:
                raise PresetError(
                    f"{name!r} is an ImageNet backbone, with no classifier: say how many "
                    f"classes to train, DANet.from_preset({name!r}, num_classes=K) or "
                    f"DANet(num_classes=K, backbone={name!r})."
                )
            model, recipe = cls(num_classes=num_classes, backbone=model), None
        elif not isinstance(model, cls):
            raise PresetError(f"{name} holds a {type(model).__name__}, not a {cls.__name__}.")
        elif num_classes is not None:
            model.preset_metadata.setdefault("preset", name)
            tuned = model.reset_classifier(num_classes)
            if tuned is not model:
                logger.info(
                    "Re-initialised %s for %d classes (the preset has %d); every other "
                    "weight is pretrained.",
                    ", ".join(tuned.get_classifier()),
                    tuned.num_classes,
                    model.num_classes,
                )
            model = tuned
        try:
            model._compile_for_a_new_run(recipe)
        except (TypeError, ValueError, AttributeError, KeyError) as error:
            raise PresetError(
                f"{name}: the training recipe saved in its config.json (compile_config) "
                f"cannot be compiled: {error}"
            ) from error
        return model

    def save_to_preset(self, directory, metadata=None, *, dataset=None, overwrite=False):
        """Writes this model as a preset folder (config.json, model.weights.h5, metadata.json).

        `directory` may be new, empty or an earlier preset of keras-danet's, whose preset
        files are replaced while they are the ones its metadata.json records. A
        config.json, model.weights.h5 or metadata.json that keras-danet did not write is
        never replaced, even with `overwrite=True`. A folder that holds other files is
        refused unless `overwrite=True`; even then nothing else in it is touched. Returns
        the folder's absolute path. `keras_danet.upload_preset` shares it on the Hub.

        metadata.json keeps `preset_metadata`, then the class names and palette of `dataset`
        (a `keras_danet.data` dataset or a `DatasetInfo`), then `metadata`. Under a new name
        (the folder's, or `metadata["preset"]`) it is a new preset: the loaded one becomes
        `pretrained`, and its identity and reported metrics stay with it (pass your own as
        `metadata={"metrics": ...}`). A model trained since it was loaded records that run
        (`training_run()`) as `training`, in place of the loaded preset's and its scores.

        Example:
        >>> model.fit(train, epochs=10)
        >>> model.save_to_preset("my_danet", dataset=train)
        >>> keras_danet.DANet.from_preset("my_danet").preset_metadata["class_names"]
        """
        record = {}
        if dataset is not None:
            info = getattr(dataset, "info", dataset)
            if len(info.class_names) != self.num_classes:
                raise ValueError(
                    f"{info.name} has {len(info.class_names)} classes; the model has "
                    f"{self.num_classes}."
                )
            record.update(
                dataset=info.name,
                class_names=list(info.class_names),
                palette=[list(color) for color in info.palette],
            )
        record.update(metadata or {})
        record = record_to_save(self.preset_metadata, directory, record, run=self.training_run())
        return saving.save_to_preset(self, directory, metadata=record, overwrite=overwrite)

    def get_classifier(self):
        """The four classifiers, by name: the only layers whose shape depends on the classes.

        Example:
        >>> model.get_classifier()["aux_classifier"].kernel.shape[-1]   # Cityscapes' classes
        19
        """
        return {name: self.get_layer(name) for name in CLASSIFIER_LAYERS}

    def reset_classifier(self, num_classes):
        """This model for `num_classes` classes: every weight kept but the four classifiers,
        which are initialised afresh (as mmseg initialises them), for fine-tuning.

        A functional Keras model cannot change a layer's shape in place, so this returns a
        new model (this one if it has `num_classes` already).

        Example:
        >>> model = keras_danet.DANet.from_preset("danet_r50_cityscapes")
        >>> model = model.reset_classifier(4)
        """
        num_classes = class_count(num_classes)
        if num_classes == self.num_classes:
            return self
        model = type(self).from_config({**self.get_config(), "num_classes": num_classes})
        for new, old in zip(model.weights, self.weights, strict=True):
            if new.path.split("/")[-2] not in CLASSIFIER_LAYERS:
                new.assign(old)
        # The old classes (names, palette, their metrics) are gone; what the rest of the
        # weights were trained as stays on record as `pretrained`.
        model.preset_metadata = record_without_classes(self.preset_metadata)
        return model

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
            "synchronized_batch_norm": self.synchronized_batch_norm,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

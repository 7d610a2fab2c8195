"""DANet: dilated ResNet-V1c, the dual attention head and the FCN auxiliary head."""

import logging
import numbers

import keras
import numpy as np
from keras import ops

# Keras' own rule for losses under tf.distribute; it does nothing on other backends.
from keras.src.losses.loss import scale_loss_for_distribution

from keras_danet.config import tracing_for_export
from keras_danet.layers import BilinearResize, ImageNormalization
from keras_danet.models.graph_execution import FreeingFunctional
from keras_danet.models.heads import CLASSIFIER_LAYERS, da_head, main_classifier, training_heads
from keras_danet.models.resnet_v1c import ResNetV1c
from keras_danet.presets import PRESETS, PresetError, loading, registry, saving
from keras_danet.training.input_check import check_arrays, checked_input, input_errors

logger = logging.getLogger("keras_danet")

# mmseg's data preprocessor, RGB order, 0-255 scale.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
# What preset_metadata says about the classes, which a new classifier makes untrue.
_CLASS_KEYS = (
    "class_names",
    "palette",
    "dataset",
    "num_classes",
    "miou",
    "miou_ms_flip",
    "metrics",
)

# compile() arguments that describe a machine, not a training recipe.
EXECUTION_SETTINGS = ("jit_compile", "run_eagerly", "steps_per_execution")


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
class DANet(FreeingFunctional, keras.Model):
    """Dual Attention Network (Fu et al., CVPR 2019), exactly as mmsegmentation builds it.

    Takes RGB images, float 0-255, NHWC, of any size; the mmseg normalisation happens inside.
    Returns the main (PAM + CAM) logits, bilinearly resized to the input size:
    `(batch, height, width, num_classes)`. The PAM, CAM and auxiliary logits, used by the
    training loss, come from `with_all_outputs()`.

    The defaults build mmseg's `danet_r50-d8` for Cityscapes (49,846,574 trainable parameters).

    Args:
        num_classes: classes of the four classifiers (Cityscapes 19, ADE20K 150, VOC 21).
        depth: ResNet-V1c depth, 50 or 101 (default 50, or the `backbone`'s).
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
            mmseg's SyncBN (TensorFlow distribution strategies; JAX's `DataParallel` uses the
            global batch anyway).

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
        self._train_all_heads = True
        self._danet_loss = None
        # Loss-term trackers, listed by `metrics` below; untracked so that a new compile()
        # replaces them instead of adding to them.
        object.__setattr__(self, "_loss_terms", {})

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

    def call(self, inputs, training=None, mask=None):
        # While training with DANetLoss, the model returns every head's logits (the dict of
        # `with_all_outputs()`), because mmseg's loss needs them; otherwise the main logits.
        if training and self._train_all_heads:
            return self._training_graph()(inputs, training=True)
        return super().call(inputs, training=training, mask=mask)

    def _training_graph(self):
        graph = self.__dict__.get("_all_outputs_graph")
        if graph is None:
            graph = self.with_all_outputs()
            # Not tracked as a sub-model: its layers are this model's own, saved once.
            object.__setattr__(self, "_all_outputs_graph", graph)
        return graph

    def compile(
        self,
        optimizer="auto",
        loss="auto",
        metrics="auto",
        *,
        learning_rate=0.01,
        max_iterations=None,
        **kwargs,
    ):
        """Configures training; with no arguments, mmseg's DANet recipe.

        - `optimizer="auto"`: `TorchSGD` (momentum 0.9, L2 weight decay 5e-4 as PyTorch
          applies it) driven by `PolyDecay` (power 0.9, from `learning_rate` down to 1e-4 over
          `max_iterations` steps; `fit` sets the horizon to `epochs x steps` if not given).
        - `loss="auto"`: `DANetLoss`, main + PAM + CAM + 0.4 x auxiliary cross-entropy,
          label 255 ignored, averaged over all pixels. The four weighted terms are logged as
          `main_loss`, `pam_loss`, `cam_loss`, `aux_loss`; `loss` is their sum.
        - `metrics="auto"`: `keras.metrics.MeanIoU` over the epoch, label 255 ignored. A
          list may name mmseg's metrics: "mIoU" (logged as `mean_iou`) and "mDice"
          (`mean_dice`, `training.MeanDice`), beside any Keras metric.

        Any of them can be replaced as in `keras.Model.compile`. A loss other than a
        `DANetLoss` is applied to the main logits only, and the PAM, CAM and auxiliary
        classifiers are then left out of training (frozen) for this compile.

        Example:
        >>> model.compile()                                    # mmseg's recipe
        >>> model.compile(learning_rate=1e-3, max_iterations=2000)
        >>> model.fit(train_data, validation_data=val_data, epochs=20)
        """
        from keras_danet import training

        if isinstance(optimizer, str) and optimizer == "auto":
            horizon = None
            if max_iterations is not None:
                horizon = training.schedule.horizon_for(max_iterations)
            optimizer = training.TorchSGD(training.PolyDecay(learning_rate, horizon))
        if isinstance(loss, str) and loss == "auto":
            loss = training.DANetLoss()
        if isinstance(metrics, str) and metrics == "auto":
            metrics = ["mIoU"]
        if isinstance(metrics, (list, tuple)):
            metrics = [self._named_metric(metric) for metric in metrics]
        danet_loss = loss if isinstance(loss, training.DANetLoss) else None
        # Before super().compile(), which fixes the trainable variables.
        self._train_all_heads = danet_loss is not None
        self.training_heads.trainable = self._train_all_heads
        self._danet_loss = danet_loss
        super().compile(
            optimizer=optimizer,
            loss=None if danet_loss else loss,
            metrics=metrics,
            **kwargs,
        )
        terms = {}
        if danet_loss is not None:
            self._training_graph()  # built here, never inside a distribution strategy's replica
            self._compile_config.config["loss"] = danet_loss  # saved with the model
            terms = {
                head: keras.metrics.Mean(name=f"{head}_loss") for head in danet_loss.head_weights
            }
        object.__setattr__(self, "_loss_terms", terms)
        if (
            keras.backend.backend() == "tensorflow"
            and self._distribute_strategy is None
            and self.optimizer is not None
            and not self.optimizer.built
        ):
            # Keras' TensorFlow trainer builds the optimizer inside the first traced step
            # when no strategy is set, and tf.function traces a step that creates variables
            # twice: built here, the first step of fit traces once (29 s -> 16 s, tiny model).
            self.optimizer.build(self.trainable_variables)

    def _named_metric(self, metric):
        """mmseg's metric names as Keras metrics over the epoch, label 255 ignored."""
        from keras_danet import training

        if metric == "mIoU":
            return keras.metrics.MeanIoU(
                self.num_classes,
                ignore_class=training.loss.IGNORE_INDEX,
                sparse_y_pred=False,
                dtype="float32",  # int32 counts overflow within an epoch of large crops
                name="mean_iou",
            )
        if metric == "mDice":
            return training.MeanDice(self.num_classes)
        if metric == "mFscore":
            raise ValueError(
                "mFscore is not a fit metric; keras_danet.evaluate(model, data, "
                'metrics=["mFscore"]) reports it with precision and recall.'
            )
        return metric

    def get_compile_config(self):
        config = super().get_compile_config()
        # A saved model carries the training recipe, not how this machine ran its steps.
        for setting in EXECUTION_SETTINGS:
            (config or {}).pop(setting, None)
        return config

    def compile_from_config(self, config):
        # Keras skips models whose compile() is overridden; this one round-trips its config.
        config = keras.saving.deserialize_keras_object(config)
        # How the saving machine ran the steps is not part of the recipe: `jit_compile=True`
        # saved on JAX would turn on torch.compile (minutes per input size) on PyTorch.
        for setting in EXECUTION_SETTINGS:
            config.pop(setting, None)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self):
        return super().metrics + list(self._loss_terms.values())

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        danet_loss = getattr(self, "_danet_loss", None)
        if danet_loss is None:
            main = y_pred["main"] if isinstance(y_pred, dict) else y_pred
            return super().compute_loss(x, y, main, sample_weight, training=training)
        terms = danet_loss.terms(y, y_pred, sample_weight)
        batch_size = ops.shape(y)[0]
        for head, value in terms.items():
            self._loss_terms[head].update_state(value, sample_weight=batch_size)
        total = ops.sum(ops.stack(list(terms.values())))
        # Under a tf.distribute strategy each replica's loss is divided by the replica count
        # (Keras' rule, so that summed gradients average over the global batch).
        total = scale_loss_for_distribution(total)
        for extra in self.losses:  # regularizers and add_loss(), as Keras' compute_loss
            total = total + self._aggregate_additional_loss(extra)
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        from keras_danet.training.loss import as_label_map, check_label_size

        training = isinstance(y_pred, dict)
        main = y_pred["main"] if training else y_pred
        check_label_size(as_label_map(y), main)
        logs = super().compute_metrics(x, y, main, sample_weight)
        if not training:  # evaluation computes the main logits only
            for tracker in self._loss_terms.values():
                logs.pop(tracker.name, None)
        return logs

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, **kw):
        """`keras.Model.fit`; it also sets the default poly schedule's horizon, checks the
        labels and images of every batch (training and validation), stops with an error at a
        NaN or infinite loss, and warns when the loss has grown tenfold over its first value
        (`LossGrowthWarning`).

        With `compile()`'s default optimizer and no `max_iterations`, the learning rate
        decays to its end value over `epochs x steps_per_epoch` steps, the whole of this
        call (an `initial_epoch` resumes inside that horizon).
        """
        from keras_danet.training.divergence import LossGrowthWarning
        from keras_danet.training.schedule import SetPolyHorizon

        if isinstance(x, np.ndarray) and len(x) == 0:  # Keras: a bare StopIteration
            raise ValueError("fit() got no training batches: x holds 0 images.")
        options = {key: kw.pop(key) for key in ("sample_weight", "class_weight") if key in kw}
        checked = []
        if not kw.get("validation_split"):  # Keras splits arrays only, checked whole
            x, y, adapter = checked_input(
                x,
                y,
                self.num_classes,
                "fit()",
                batch_size=batch_size,
                steps_per_epoch=kw.get("steps_per_epoch"),
                # Keras' default: a PyDataset's batch order shuffled; other streams warn.
                shuffle=kw.get("shuffle", isinstance(x, keras.utils.PyDataset)),
                **options,
            )
            if adapter is not None:
                checked.append(adapter)
                options = {}
        else:
            check_arrays(x, y, self.num_classes, "fit()")
        validation = kw.get("validation_data")
        if validation is not None:
            val_x, val_y, val_weight = keras.utils.unpack_x_y_sample_weight(validation)
            val_x, val_y, adapter = checked_input(
                val_x,
                val_y,
                self.num_classes,
                "fit(validation_data=...)",
                sample_weight=val_weight,
                batch_size=kw.get("validation_batch_size") or batch_size,
                steps_per_epoch=kw.get("validation_steps"),
            )
            if adapter is not None:
                checked.append(adapter)
                kw["validation_data"] = adapter
        callbacks = [SetPolyHorizon(), *(callbacks or [])]
        if not any(isinstance(c, keras.callbacks.TerminateOnNaN) for c in callbacks):
            # A NaN loss ends fit with an error instead of training on with NaN weights;
            # raise_error also keeps BackupAndRestore's last good backup (Keras deletes it
            # in on_train_end, which a graceful stop would run).
            callbacks.append(keras.callbacks.TerminateOnNaN(raise_error=True))
        if not any(isinstance(c, LossGrowthWarning) for c in callbacks):
            callbacks.append(LossGrowthWarning())
        with input_errors(self, checked):
            return super().fit(x, y, batch_size, epochs, verbose, callbacks, **options, **kw)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", **kw):
        """`keras.Model.evaluate`, with the labels and images of every batch checked as in
        `fit`. For mmseg's metrics at original resolution use `keras_danet.evaluate`."""
        options = {key: kw.pop(key) for key in ("sample_weight",) if key in kw}
        x, y, adapter = checked_input(
            x,
            y,
            self.num_classes,
            "evaluate()",
            batch_size=batch_size,
            steps_per_epoch=kw.get("steps"),
            **options,
        )
        if adapter is not None:
            options = {}
        with input_errors(self, [adapter] if adapter is not None else []):
            return super().evaluate(x, y, batch_size, verbose, **options, **kw)

    def export(self, filepath, format="tf_saved_model", **kwargs):
        """`keras.Model.export`, traced with `tracing_for_export()`: the position
        attention computes its matrix at once, with no loop an exporter cannot convert.

        Example:
        >>> model.export("danet.onnx", format="onnx")   # on the TensorFlow backend
        """
        if kwargs.get("input_signature") is None:
            # Keras' ONNX export asks for a model that has been called; the input is known.
            images = keras.InputSpec(shape=(None, None, None, 3), dtype="float32", name="images")
            kwargs["input_signature"] = [images]
        with tracing_for_export():
            return super().export(filepath, format=format, **kwargs)

    def segment(
        self,
        images,
        *,
        mode=None,
        crop=None,
        stride=None,
        test_scale=None,
        multi_scale=False,
        ratios=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75),
        flip=True,
        progress=False,
    ):
        """Class maps of images, each at its own original resolution.

        `images` is one image or a list: file paths, PIL images or arrays (RGB, grayscale or
        RGBA; uint8, 16-bit, or floats 0-255), each of any size, or a 4-D batch. Each is
        segmented with this preset's test mode (whole image, or sliding windows with its crop
        and stride, after its test resize), as mmseg evaluated it; `mode`, `crop`, `stride`
        and `test_scale` override that. `multi_scale=True` averages the class probabilities
        over mmseg's scales (and their mirror images with `flip`: True, False, "vertical"
        or a list such as `["horizontal", "vertical"]`).

        Returns a `(H, W)` uint8 class map for one image, or a list of them.

        Example:
        >>> labels = model.segment("street.png")                 # (H, W) class indices
        >>> labels = model.segment(["a.jpg", "b.jpg"], multi_scale=True)
        """
        from keras_danet import inference

        settings = inference.InferenceSettings.of(self, mode, crop, stride, test_scale)
        return inference.segment(
            self, images, settings, multi_scale, ratios, flip, progress=progress
        )

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

        Example:
        >>> model = keras_danet.DANet.from_preset("danet_r101_cityscapes")
        >>> model = keras_danet.DANet.from_preset("danet_r50_ade20k", num_classes=4)
        """
        model, name = loading.load_preset(
            handle, mirror=mirror, cache_dir=cache_dir, progress=progress
        )
        if isinstance(model, ResNetV1c):
            if num_classes is None:
                raise PresetError(
                    f"{name!r} is an ImageNet backbone, with no classifier: say how many "
                    f"classes to train, DANet.from_preset({name!r}, num_classes=K) or "
                    f"DANet(num_classes=K, backbone={name!r})."
                )
            return cls(num_classes=num_classes, backbone=model)
        if not isinstance(model, cls):
            raise PresetError(f"{name} holds a {type(model).__name__}, not a {cls.__name__}.")
        if num_classes is None:
            return model
        model.preset_metadata.setdefault("preset", name)
        tuned = model.reset_classifier(num_classes)
        if tuned is not model:
            logger.info(
                "Re-initialised %s for %d classes (the preset has %d); every other weight is "
                "pretrained.",
                ", ".join(tuned.get_classifier()),
                tuned.num_classes,
                model.num_classes,
            )
        return tuned

    def save_to_preset(self, directory, metadata=None, *, dataset=None, overwrite=False):
        """Writes this model as a preset folder (config.json, model.weights.h5, metadata.json).

        `directory` may be new, empty or an earlier preset of keras-danet's, whose preset
        files are replaced while they are the ones its metadata.json records. A
        config.json, model.weights.h5 or metadata.json that keras-danet did not write is
        never replaced, even with `overwrite=True`. A folder that holds other files is
        refused unless `overwrite=True`; even then nothing else in it is touched. Returns
        the folder's absolute path. `keras_danet.upload_preset` shares it on the Hub.

        metadata.json keeps what the model was loaded with (`preset_metadata`), then the
        class names and palette of `dataset` (a `keras_danet.data` dataset or a
        `DatasetInfo`), then `metadata`. Saved under a new name (the folder's, or
        `metadata["preset"]`), it is a new preset: the loaded preset's name becomes
        `pretrained`, and its identity (description, source, Hub repo) and reported metrics
        stay with it, not with these weights; pass your own as `metadata={"metrics": ...}`.

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
        record = saving.record_to_save(self.preset_metadata, directory, record)
        return saving.save_to_preset(self, directory, metadata=record, overwrite=overwrite)

    def get_classifier(self):
        """The four classifiers, by name: the only layers whose shape depends on the classes.

        Example:
        >>> model.get_classifier()["aux_classifier"].kernel.shape
        (1, 1, 256, 19)
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
        record = {k: v for k, v in self.preset_metadata.items() if k not in _CLASS_KEYS}
        if self.preset_metadata.get("preset"):
            record["pretrained"] = record.pop("preset")
        model.preset_metadata = record
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

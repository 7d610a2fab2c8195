"""`Preset`: the one record that describes any set of weights keras_danet can load."""

import dataclasses
import os
import types

from keras_danet.dataset_info import DatasetInfo
from keras_danet.presets.files import PresetError, read_json
from keras_danet.presets.sources import BundledFolder, HubRepo, LocalFolder, MmsegCheckpoint

ARCHITECTURES = ("DANet", "ResNetV1c")


@dataclasses.dataclass(frozen=True)
class TestSettings:
    """How a set of weights is evaluated: mmseg's `test_cfg` and test `Resize`.

    Args:
        mode: "whole", or "slide" over `crop`-sized windows every `stride` pixels.
        crop, stride: `(height, width)` of the windows and of their steps (slide mode).
        scale: mmseg's test `Resize(scale, keep_ratio=True)`, the `(long, short)` edges the
            image is resized to fit (Cityscapes `(2048, 1024)`, ADE20K and VOC
            `(2048, 512)`); None keeps the image's size.

    Example:
    >>> settings = TestSettings("slide", crop=(769, 769), stride=(513, 513))
    >>> TestSettings.of(model, mode="whole")   # the model's preset's, overridden
    """

    mode: str = "whole"
    crop: tuple | None = None
    stride: tuple | None = None
    scale: tuple | None = None

    def __post_init__(self):
        if self.mode not in ("whole", "slide"):
            raise ValueError(f"mode must be 'whole' or 'slide', got {self.mode!r}.")
        if self.mode == "slide" and not (self.crop and self.stride):
            raise ValueError("slide mode needs crop=(height, width) and stride=(height, width).")
        for name in ("crop", "stride", "scale"):
            value = getattr(self, name)
            if value is not None:
                value = tuple(int(v) for v in value)
                if len(value) != 2 or min(value) < 1:
                    raise ValueError(f"{name} must be two positive integers, got {value}.")
                object.__setattr__(self, name, value)

    @classmethod
    def of(cls, model, mode=None, crop=None, stride=None, scale=None):
        """The settings of `model`'s preset (`model.preset.test`), each overridden where
        given; "whole" at the image's size for a model with none."""
        preset = getattr(model, "preset", None)
        base = (preset.test if preset is not None else None) or cls()
        mode = base.mode if mode is None else mode
        if mode == "slide":
            crop, stride = crop or base.crop, stride or base.stride
        return cls(mode, crop, stride, base.scale if scale is None else scale)

    def describe(self):
        text = self.mode
        if self.mode == "slide":
            text += f" {self.crop[0]}x{self.crop[1]} every {self.stride[0]}x{self.stride[1]}"
        if self.scale:
            text += f", test scale {self.scale[0]}x{self.scale[1]}"
        return text


def _frozen(mapping):
    return types.MappingProxyType(dict(mapping or {}))


@dataclasses.dataclass(frozen=True)
class Preset:
    """Everything known about one set of weights, and where they come from.

    The same record describes mmseg's DANet checkpoints, the bundled demo, ImageNet
    backbones and a user's own fine-tune (`Preset.from_folder`).

    Fields:
        name: what `from_preset` takes.
        architecture: the class the weights build, "DANet" or "ResNetV1c".
        config: the architecture's constructor arguments that identify it (depth, classes...).
        source: where the weights are (`MmsegCheckpoint`, `BundledFolder`, `HubRepo`,
            `LocalFolder`; None for a model's own `preset`, which is in memory).
        description: one line for tables and model cards.
        dataset: class names and palette (None for an ImageNet backbone: no classes of ours).
        test: the test mode, crop, stride and resize (None for a backbone).
        metrics: reported figures, such as `{"mIoU": 78.74, "mIoU_ms_flip": 80.62}`.
        training: how the weights were trained (mmseg config, crop, iterations, batch size).
        license: of the weights.
        hub: a converted copy on the Hub, tried before the source is converted.

    Example:
    >>> preset = keras_danet.DANet.presets["danet_r101_cityscapes"]
    >>> preset.metrics["mIoU"], preset.source.url()
    """

    name: str
    architecture: str
    config: types.MappingProxyType
    source: MmsegCheckpoint | BundledFolder | HubRepo | LocalFolder | None
    description: str = ""
    dataset: DatasetInfo | None = None
    test: TestSettings | None = None
    metrics: types.MappingProxyType = dataclasses.field(default_factory=dict)
    training: types.MappingProxyType = dataclasses.field(default_factory=dict)
    license: str = "Apache-2.0"
    hub: HubRepo | None = None

    def __post_init__(self):
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"architecture must be one of {ARCHITECTURES}, not {self.architecture!r}"
            )
        for name in ("config", "metrics", "training"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    @property
    def depth(self):
        return self.config.get("depth", 50)

    @property
    def num_classes(self):
        """The dataset's class count, else the architecture's (None for a backbone)."""
        if self.dataset is not None:
            return self.dataset.num_classes
        return self.config.get("num_classes")

    def metadata(self):
        """The JSON-ready facts written to a preset folder's metadata.json."""

        def listed(value):
            return list(value) if value else None

        record = {
            "preset": self.name,
            "architecture": self.architecture,
            "description": self.description,
        }
        if self.dataset is not None:
            record.update(
                dataset=self.dataset.name,
                class_names=list(self.dataset.class_names),
                palette=[list(color) for color in self.dataset.palette],
            )
        record["depth"] = self.depth
        if self.test is not None:
            record.update(
                test_mode=self.test.mode,
                slide_crop=listed(self.test.crop),
                slide_stride=listed(self.test.stride),
                test_scale=listed(self.test.scale),
            )
        if self.architecture == "DANet":
            record["align_corners"] = bool(self.config.get("align_corners", False))
        if self.metrics:
            record.update(
                miou=self.metrics.get("mIoU"), miou_ms_flip=self.metrics.get("mIoU_ms_flip")
            )
            record["metrics"] = dict(self.metrics)
        if self.training:
            record["training"] = {
                key: list(value) if isinstance(value, tuple) else value
                for key, value in self.training.items()
            }
        if self.source is not None:
            record["source"] = self.source.describe()
        if isinstance(self.source, MmsegCheckpoint):
            record.update(
                checkpoint_url=self.source.url(),
                checkpoint_sha256_prefix=self.source.sha256_prefix,
            )
        record["license"] = self.license
        if self.hub is not None:
            record.update(hub_repo=self.hub.repo, hub_revision=self.hub.revision)
        return record

    @classmethod
    def from_folder(cls, folder):
        """The record of a preset folder (your own `save_to_preset`, or a Hub download).

        Reads what its metadata.json and config.json say; whatever they leave out stays
        unknown (None or empty). Raises `PresetError` for a folder that is no preset.

        Example:
        >>> model.save_to_preset("my_danet", dataset=train)
        >>> keras_danet.presets.Preset.from_folder("my_danet").dataset.class_names
        """
        folder = os.fspath(folder)
        metadata = read_json(os.path.join(folder, "metadata.json"))
        config = read_json(os.path.join(folder, "config.json"))
        if not isinstance(metadata, dict) or not isinstance(config, dict):
            raise PresetError(f"{folder}: metadata.json and config.json must each hold a record.")
        architecture = str(config.get("registered_name", "")).split(">")[-1]
        if architecture not in ARCHITECTURES:
            raise PresetError(
                f"{os.path.join(folder, 'config.json')} describes {architecture or 'nothing'}"
                f", not one of {', '.join(ARCHITECTURES)}."
            )
        return cls.from_metadata(
            metadata,
            architecture,
            config.get("config") or {},
            source=LocalFolder(folder),
            name=metadata.get("preset") or os.path.basename(os.path.normpath(folder)),
            where=os.path.join(folder, "metadata.json"),
        )

    @classmethod
    def from_metadata(cls, metadata, architecture, config, source=None, name=None, where=None):
        """The record that a metadata.json (or a model's `preset_metadata`) and the model's
        constructor arguments `config` describe; what they leave out stays unknown (None or
        empty). `where` names the record's file in errors.

        This and `metadata()` are the one place where the record's keys are read and written.
        """
        dataset = None
        # Lists as metadata.json holds them, or NumPy arrays a user put in preset_metadata.
        names, palette = _tuple(metadata.get("class_names")), _tuple(metadata.get("palette"))
        if names:
            dataset = DatasetInfo(
                name=metadata.get("dataset") or "custom",
                title=metadata.get("dataset") or "custom",
                class_names=tuple(str(name) for name in names),
                palette=tuple(tuple(int(v) for v in color) for color in palette or ()),
            )
        test = None
        if metadata.get("test_mode"):
            try:
                test = TestSettings(
                    mode=metadata["test_mode"],
                    crop=_tuple(metadata.get("slide_crop")),
                    stride=_tuple(metadata.get("slide_stride")),
                    scale=_tuple(metadata.get("test_scale")),
                )
            except (TypeError, ValueError) as error:
                raise PresetError(
                    f"{where or 'preset_metadata'}: its test settings are wrong: {error}"
                ) from None
        metrics = dict(metadata.get("metrics") or {})
        if not metrics and metadata.get("miou") is not None:
            metrics["mIoU"] = metadata["miou"]
            if metadata.get("miou_ms_flip") is not None:
                metrics["mIoU_ms_flip"] = metadata["miou_ms_flip"]
        hub = None
        if metadata.get("hub_repo"):
            hub = HubRepo(metadata["hub_repo"], metadata.get("hub_revision") or "main")
        return cls(
            name=name if name is not None else metadata.get("preset") or "",
            architecture=architecture,
            config=_identifying_config(config),
            source=source,
            description=metadata.get("description") or "",
            dataset=dataset,
            test=test,
            metrics=metrics,
            training=metadata.get("training") or {},
            license=metadata.get("license") or "unknown",
            hub=hub,
        )


def _tuple(value):
    """A tuple of a list or an array; None for None or an empty one."""
    return None if value is None or len(value) == 0 else tuple(value)


# The constructor arguments a record keeps: what tells two models apart, not their names.
_IDENTIFYING = (
    "num_classes",
    "depth",
    "output_stride",
    "stem_channels",
    "base_channels",
    "head_channels",
    "pam_channels",
    "aux_channels",
    "align_corners",
)


def _identifying_config(config):
    return {key: config[key] for key in _IDENTIFYING if key in config}


# What names one published preset and the figures measured for its weights: a save under
# another name is another preset (a fine-tune), which keeps only where it started from.
_IDENTITY_KEYS = (
    "preset",
    "description",
    "source",
    "source_url",
    "source_sha256",
    "checkpoint_url",
    "checkpoint_sha256_prefix",
    "hub_repo",
    "hub_revision",
    "miou",
    "miou_ms_flip",
    "metrics",
    "held_out",
)
# What describes how weights were made and what they scored: untrue once they trained on.
_TRAINING_KEYS = ("training", "miou", "miou_ms_flip", "metrics", "held_out")


def record_to_save(record, directory, metadata, run=None):
    """metadata.json's record for a model loaded with `record`, saved to `directory` with
    `metadata` added: under a new name, a new preset that keeps only where it started from.

    `run` is the model's training since it was loaded (`training_run()`), if any: it
    replaces the loaded preset's training record and scores, which no longer describe
    these weights (`metadata` may give the new scores)."""
    record = dict(record)  # the model's own stays as it was
    loaded = record.get("preset")
    name = metadata.get("preset") or os.path.basename(os.path.normpath(os.fspath(directory)))
    if loaded and loaded != name:
        record = {k: v for k, v in record.items() if k not in _IDENTITY_KEYS}
        record.setdefault("pretrained", loaded)
        record["preset"] = name
    if run:
        # Trained on: neither the release nor its scores describe these weights, even under
        # the name they were loaded with (which then names the new weights, trained from
        # the earlier ones).
        record = {k: v for k, v in record.items() if k not in _TRAINING_KEYS}
        if loaded and loaded == name:
            record = {k: v for k, v in record.items() if k not in _IDENTITY_KEYS}
            record["preset"] = name
            record.setdefault("pretrained", loaded)
        record["training"] = run
    record.update(metadata)
    return record


# What a record says about the classes, which a new classifier makes untrue.
_CLASS_KEYS = (
    "class_names",
    "palette",
    "dataset",
    "num_classes",
    "miou",
    "miou_ms_flip",
    "metrics",
)


def record_without_classes(record):
    """The record of a model whose classifiers were made afresh (`reset_classifier`): the
    old classes, their names, palette and scores are gone; what the rest of the weights were
    trained as stays, as `pretrained`."""
    record = {k: v for k, v in record.items() if k not in _CLASS_KEYS}
    if record.get("preset"):
        record["pretrained"] = record.pop("preset")
    return record

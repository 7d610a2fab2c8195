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
    """How the weights are evaluated: mmseg's `test_cfg` and test `Resize`.

    `mode` is "whole" or "slide" (windows of `crop` every `stride`, (height, width));
    `scale` is the test Resize(scale, keep_ratio=True): (long, short) edges to fit.
    """

    mode: str = "whole"
    crop: tuple | None = None
    stride: tuple | None = None
    scale: tuple | None = None


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
            `LocalFolder`).
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
    source: MmsegCheckpoint | BundledFolder | HubRepo | LocalFolder
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

    # Shortcuts to the fields above, under the names they had when every preset was an mmseg
    # checkpoint (kept: code written against them goes on working).
    @property
    def depth(self):
        return self.config.get("depth", 50)

    @property
    def num_classes(self):
        if self.dataset is not None:
            return self.dataset.num_classes
        return self.config.get("num_classes")

    @property
    def class_names(self):
        return self.dataset.class_names if self.dataset else None

    @property
    def palette(self):
        return self.dataset.palette if self.dataset else None

    @property
    def align_corners(self):
        return bool(self.config.get("align_corners", False))

    @property
    def test_mode(self):
        return self.test.mode if self.test else None

    @property
    def slide_crop(self):
        return self.test.crop if self.test else None

    @property
    def slide_stride(self):
        return self.test.stride if self.test else None

    @property
    def test_scale(self):
        return self.test.scale if self.test else None

    @property
    def miou(self):
        return self.metrics.get("mIoU")

    @property
    def miou_ms_flip(self):
        return self.metrics.get("mIoU_ms_flip")

    @property
    def crop_size(self):
        return self.training.get("crop_size")

    @property
    def iterations(self):
        return self.training.get("iterations")

    @property
    def batch_size(self):
        return self.training.get("batch_size")

    @property
    def mmseg_config(self):
        return self.training.get("mmseg_config")

    @property
    def checkpoint_file(self):
        """The released .pth file's stem (an mmseg source), else None."""
        if isinstance(self.source, MmsegCheckpoint):
            return self.source.file_name.removesuffix(".pth")
        return None

    @property
    def sha256_prefix(self):
        return self.source.sha256_prefix if isinstance(self.source, MmsegCheckpoint) else None

    @property
    def checkpoint_url(self):
        return self.source.url() if isinstance(self.source, MmsegCheckpoint) else None

    @property
    def hub_repo(self):
        return self.hub.repo if self.hub else None

    @property
    def hub_revision(self):
        return self.hub.revision if self.hub else None

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
                class_names=list(self.class_names),
                palette=[list(color) for color in self.palette],
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
            record["align_corners"] = self.align_corners
        if self.metrics:
            record.update(miou=self.miou, miou_ms_flip=self.miou_ms_flip)
            record["metrics"] = dict(self.metrics)
        if self.training:
            record["training"] = {
                key: list(value) if isinstance(value, tuple) else value
                for key, value in self.training.items()
            }
        if self.crop_size:  # the keys of the first preset format, still read by older code
            record.update(
                crop_size=list(self.crop_size),
                schedule={"iterations": self.iterations, "batch_size": self.batch_size},
                mmseg_config=self.mmseg_config,
            )
        record["source"] = self.source.describe()
        if isinstance(self.source, MmsegCheckpoint):
            record.update(
                checkpoint_url=self.checkpoint_url, checkpoint_sha256_prefix=self.sha256_prefix
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
        dataset = None
        if metadata.get("class_names"):
            dataset = DatasetInfo(
                name=metadata.get("dataset") or "custom",
                title=metadata.get("dataset") or "custom",
                class_names=tuple(metadata["class_names"]),
                palette=tuple(tuple(c) for c in metadata.get("palette") or ()),
            )
        test = None
        if metadata.get("test_mode"):
            test = TestSettings(
                mode=metadata["test_mode"],
                crop=_tuple(metadata.get("slide_crop")),
                stride=_tuple(metadata.get("slide_stride")),
                scale=_tuple(metadata.get("test_scale")),
            )
        metrics = dict(metadata.get("metrics") or {})
        if not metrics and metadata.get("miou") is not None:
            metrics["mIoU"] = metadata["miou"]
            if metadata.get("miou_ms_flip") is not None:
                metrics["mIoU_ms_flip"] = metadata["miou_ms_flip"]
        hub = None
        if metadata.get("hub_repo"):
            hub = HubRepo(metadata["hub_repo"], metadata.get("hub_revision") or "main")
        return cls(
            name=metadata.get("preset") or os.path.basename(os.path.normpath(folder)),
            architecture=architecture,
            config=_identifying_config(config.get("config") or {}),
            source=LocalFolder(folder),
            description=metadata.get("description") or "",
            dataset=dataset,
            test=test,
            metrics=metrics,
            training=metadata.get("training") or {},
            license=metadata.get("license") or "unknown",
            hub=hub,
        )


def _tuple(value):
    return tuple(value) if value else None


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

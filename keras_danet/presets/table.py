"""The 16 mmsegmentation DANet checkpoints: one table, the only source of these facts.

`python -m keras_danet.presets.table` prints the table as Markdown (the README's copy).
"""

import collections.abc
import dataclasses
import difflib
import os
import types

from keras_danet.dataset_info import ADE20K, CITYSCAPES, VOC12AUG, DatasetInfo

MMSEG_DOWNLOAD_ROOT = "https://download.openmmlab.com/mmsegmentation/"
HUB_ORGANIZATION = "keras-danet"


@dataclasses.dataclass(frozen=True)
class Preset:
    """Everything known about one converted mmseg DANet checkpoint.

    Example:
    >>> preset = keras_danet.DANet.presets["danet_r101_cityscapes"]
    >>> preset.miou, preset.checkpoint_url
    """

    name: str
    dataset: DatasetInfo
    depth: int
    crop_size: tuple  # (height, width) of the training crops
    iterations: int
    batch_size: int  # total over 4 GPUs
    align_corners: bool
    test_mode: str  # "whole", or "slide" over `slide_crop` windows every `slide_stride`
    miou: float  # single scale, mmseg's README
    miou_ms_flip: float | None  # multi-scale + flip, where mmseg reports it
    mmseg_config: str  # the mmseg 1.x config name
    checkpoint_file: str  # the released file's stem: old config name, date, hash suffix
    slide_crop: tuple | None = None
    slide_stride: tuple | None = None
    # mmseg's test Resize(scale, keep_ratio=True): (long, short) edges to fit.
    test_scale: tuple | None = None
    hub_repo: str | None = None  # defaults to keras-danet/<name>
    # A 40-hex commit once published (weights/publish.py prints it); "main" before that.
    hub_revision: str = "main"
    license: str = "Apache-2.0"

    def __post_init__(self):
        if self.hub_repo is None:
            object.__setattr__(self, "hub_repo", f"{HUB_ORGANIZATION}/{self.name}")

    @property
    def num_classes(self):
        return self.dataset.num_classes

    @property
    def class_names(self):
        return self.dataset.class_names

    @property
    def palette(self):
        return self.dataset.palette

    @property
    def sha256_prefix(self):
        """The 8 hex digits mmseg's publish script appended: a prefix of the file's sha256."""
        return self.checkpoint_file.rsplit("-", 1)[1]

    @property
    def checkpoint_url(self):
        return checkpoint_url(self)

    def metadata(self):
        """The JSON-ready facts written to a preset folder's metadata.json."""
        return {
            "preset": self.name,
            "dataset": self.dataset.name,
            "class_names": list(self.class_names),
            "palette": [list(color) for color in self.palette],
            "depth": self.depth,
            "crop_size": list(self.crop_size),
            "test_mode": self.test_mode,
            "slide_crop": list(self.slide_crop) if self.slide_crop else None,
            "slide_stride": list(self.slide_stride) if self.slide_stride else None,
            "test_scale": list(self.test_scale) if self.test_scale else None,
            "align_corners": self.align_corners,
            "miou": self.miou,
            "miou_ms_flip": self.miou_ms_flip,
            "schedule": {"iterations": self.iterations, "batch_size": self.batch_size},
            "mmseg_config": self.mmseg_config,
            "checkpoint_url": self.checkpoint_url,
            "checkpoint_sha256_prefix": self.sha256_prefix,
            "license": self.license,
            "hub_repo": self.hub_repo,
            "hub_revision": self.hub_revision,
        }


def checkpoint_url(preset, mirror=None):
    """The original .pth URL, or its copy under `mirror` (a base URL replacing mmseg's root)."""
    old_config_name = preset.checkpoint_file.rsplit("_", 2)[0]
    path = f"v0.5/danet/{old_config_name}/{preset.checkpoint_file}.pth"
    root = mirror if mirror else MMSEG_DOWNLOAD_ROOT
    return root.rstrip("/") + "/" + path


def _cityscapes(depth, crop, iterations, stamp, miou, ms_flip=None):
    large = crop == 769
    crop_text = "769x769" if large else "512x1024"
    return Preset(
        name=f"danet_r{depth}_d8_cityscapes_{crop_text}_{iterations}k",
        dataset=CITYSCAPES,
        depth=depth,
        crop_size=(769, 769) if large else (512, 1024),
        iterations=iterations * 1000,
        batch_size=8,
        align_corners=large,
        test_mode="slide" if large else "whole",
        slide_crop=(769, 769) if large else None,
        slide_stride=(513, 513) if large else None,
        test_scale=(2049, 1025) if large else (2048, 1024),
        miou=miou,
        miou_ms_flip=ms_flip,
        mmseg_config=f"danet_r{depth}-d8_4xb2-{iterations}k_cityscapes-{crop_text}",
        checkpoint_file=f"danet_r{depth}-d8_{crop_text}_{iterations}k_cityscapes_{stamp}",
    )


def _512(dataset, depth, iterations, stamp, miou, ms_flip):
    return Preset(
        name=f"danet_r{depth}_d8_{dataset.name}_512x512_{iterations}k",
        dataset=dataset,
        depth=depth,
        crop_size=(512, 512),
        iterations=iterations * 1000,
        batch_size=16,
        align_corners=False,
        test_mode="whole",
        test_scale=(2048, 512),
        miou=miou,
        miou_ms_flip=ms_flip,
        mmseg_config=f"danet_r{depth}-d8_4xb4-{iterations}k_{dataset.name}-512x512",
        checkpoint_file=f"danet_r{depth}-d8_512x512_{iterations}k_{dataset.name}_{stamp}",
    )


# mmseg's DANet README and metafile (reference section 1.3).
_PRESETS = (
    _cityscapes(50, 512, 40, "20200605_191324-c0dbfa5f", 78.74),
    _cityscapes(101, 512, 40, "20200605_200831-c57a7157", 80.52),
    _cityscapes(50, 769, 40, "20200530_025703-76681c60", 78.88, 80.62),
    _cityscapes(101, 769, 40, "20200530_025717-dcb7fd4e", 79.88, 81.47),
    _cityscapes(50, 512, 80, "20200607_133029-2bfa2293", 79.34),
    _cityscapes(101, 512, 80, "20200607_132918-955e6350", 80.41),
    _cityscapes(50, 769, 80, "20200607_132954-495689b4", 79.27, 80.96),
    _cityscapes(101, 769, 80, "20200607_132918-f3a929e7", 80.47, 82.02),
    _512(ADE20K, 50, 80, "20200615_015125-edb18e08", 41.66, 42.90),
    _512(ADE20K, 101, 80, "20200615_015126-d0357c73", 43.64, 45.19),
    _512(ADE20K, 50, 160, "20200616_082340-9cb35dcd", 42.45, 43.25),
    _512(ADE20K, 101, 160, "20200616_082348-23bf12f9", 44.17, 45.02),
    _512(VOC12AUG, 50, 20, "20200618_070026-9e9e3ab3", 74.45, 75.69),
    _512(VOC12AUG, 101, 20, "20200618_070026-d48d23b2", 76.02, 77.23),
    _512(VOC12AUG, 50, 40, "20200613_235526-426e3a64", 76.37, 77.29),
    _512(VOC12AUG, 101, 40, "20200613_223031-788e232a", 76.51, 77.32),
)


def _best_single_scale_aliases(presets):
    """`danet_r{depth}_{dataset}` → the preset of that backbone and dataset with the best mIoU."""
    best = {}
    for preset in presets:
        alias = f"danet_r{preset.depth}_{preset.dataset.name}"
        if alias not in best or preset.miou > best[alias].miou:
            best[alias] = preset
    return {alias: preset.name for alias, preset in best.items()}


ALIASES = types.MappingProxyType(_best_single_scale_aliases(_PRESETS))


class PresetTable(collections.abc.Mapping):
    """A read-only mapping of preset names to `Preset`s that also answers to the aliases."""

    def __init__(self, presets):
        self._presets = {preset.name: preset for preset in presets}

    def __getitem__(self, name):
        try:
            return self._presets[ALIASES.get(name, name)]
        except (KeyError, TypeError):
            raise KeyError(unknown_preset_message(name)) from None

    def __contains__(self, name):
        return isinstance(name, str) and ALIASES.get(name, name) in self._presets

    def __iter__(self):
        return iter(self._presets)

    def __len__(self):
        return len(self._presets)


# Presets shipped inside the package, trained by weights/train_demo_preset.py: no download.
BUNDLED_PRESETS = {"danet_demo_shapes": "Synthetic street scenes, 4 classes, R50 at 1/16 width"}
BUNDLED_FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bundled")


def bundled_preset_folder(name):
    return os.path.join(BUNDLED_FOLDER, name)


def unknown_preset_message(name):
    known = list(ALIASES) + list(PRESETS.keys()) + list(BUNDLED_PRESETS)
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return (
        f"Unknown preset {name!r}.{hint} keras_danet.list_presets() names them all; a local "
        "folder or an hf://org/repo handle works too."
    )


PRESETS = PresetTable(_PRESETS)


def list_presets(include_aliases=True):
    """Names of the presets: the 16 mmseg checkpoints, the bundled demo, then the 6 aliases.

    Example:
    >>> keras_danet.list_presets()[:2]
    ['danet_r50_d8_cityscapes_512x1024_40k', 'danet_r101_d8_cityscapes_512x1024_40k']
    """
    names = list(PRESETS.keys()) + list(BUNDLED_PRESETS)
    return names + (list(ALIASES) if include_aliases else [])


def markdown_table():
    """The preset table as Markdown, for the README and the model cards."""
    aliases = {}
    for alias, name in ALIASES.items():
        aliases.setdefault(name, []).append(alias)
    lines = [
        "| preset | alias | dataset | crop | schedule | test mode | mIoU | ms+flip mIoU |",
        "|---|---|---|---|---|---|---:|---:|",
    ]
    for preset in PRESETS.values():
        mode = preset.test_mode
        if mode == "slide":
            mode = f"slide {preset.slide_crop[0]}/{preset.slide_stride[0]}"
        ms_flip = f"{preset.miou_ms_flip:.2f}" if preset.miou_ms_flip else "–"
        lines.append(
            f"| `{preset.name}` | {', '.join(f'`{a}`' for a in aliases.get(preset.name, []))} "
            f"| {preset.dataset.title} | {preset.crop_size[0]}x{preset.crop_size[1]} "
            f"| {preset.iterations // 1000}k x {preset.batch_size} | {mode} "
            f"| {preset.miou:.2f} | {ms_flip} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())

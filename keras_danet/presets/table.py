"""Every preset by name: the 16 mmsegmentation DANet checkpoints, the bundled demo and the
ImageNet backbones. One table, the only source of these facts.

`python -m keras_danet.presets.table` prints the table as Markdown (the README's copy).
"""

import collections.abc
import difflib
import types

from keras_danet.dataset_info import ADE20K, CITYSCAPES, SYNTHETIC_SCENES, VOC12AUG
from keras_danet.presets.preset import Preset, TestSettings
from keras_danet.presets.sources import (
    PRETRAIN_ROOT,
    BundledFolder,
    HubRepo,
    MmsegCheckpoint,
)

HUB_ORGANIZATION = "keras-danet"


def checkpoint_url(preset, mirror=None):
    """The original .pth URL of an mmseg-sourced preset, or its copy under `mirror`."""
    if not isinstance(preset.source, MmsegCheckpoint):
        raise ValueError(f"The preset {preset.name!r} is not converted from an mmseg checkpoint.")
    return preset.source.url(mirror)


# The Hub commit of each converted copy: weights/publish.py writes them to manifest.json
# after an upload, to be pasted here; "main" until then.
_HUB_REVISIONS = {}


def _hub(name):
    return HubRepo(f"{HUB_ORGANIZATION}/{name}", _HUB_REVISIONS.get(name, "main"))


def _metrics(miou, ms_flip):
    """mmseg's reported mIoU on the validation set: single scale, and multi-scale + flip."""
    return {"mIoU": miou} | ({"mIoU_ms_flip": ms_flip} if ms_flip else {})


def _mmseg_danet(name, dataset, depth, align_corners, test, metrics, checkpoint_file, **training):
    old_config_name = checkpoint_file.rsplit("_", 2)[0]
    return Preset(
        name=name,
        architecture="DANet",
        config={"num_classes": dataset.num_classes, "depth": depth, "align_corners": align_corners},
        source=MmsegCheckpoint(f"v0.5/danet/{old_config_name}/{checkpoint_file}.pth"),
        description=(
            f"DANet R{depth}-D8 for {dataset.title}, mmsegmentation's checkpoint "
            f"({training['crop_size'][0]}x{training['crop_size'][1]} crops, "
            f"{training['iterations'] // 1000}k iterations)"
        ),
        dataset=dataset,
        test=test,
        metrics=metrics,
        training=training,
        hub=_hub(name),
    )


def _cityscapes(depth, crop, iterations, stamp, miou, ms_flip=None):
    large = crop == 769
    crop_text = "769x769" if large else "512x1024"
    return _mmseg_danet(
        name=f"danet_r{depth}_d8_cityscapes_{crop_text}_{iterations}k",
        dataset=CITYSCAPES,
        depth=depth,
        align_corners=large,
        test=TestSettings(
            mode="slide" if large else "whole",
            crop=(769, 769) if large else None,
            stride=(513, 513) if large else None,
            scale=(2049, 1025) if large else (2048, 1024),
        ),
        metrics=_metrics(miou, ms_flip),
        crop_size=(769, 769) if large else (512, 1024),
        iterations=iterations * 1000,
        batch_size=8,
        mmseg_config=f"danet_r{depth}-d8_4xb2-{iterations}k_cityscapes-{crop_text}",
        checkpoint_file=f"danet_r{depth}-d8_{crop_text}_{iterations}k_cityscapes_{stamp}",
    )


def _512(dataset, depth, iterations, stamp, miou, ms_flip):
    return _mmseg_danet(
        name=f"danet_r{depth}_d8_{dataset.name}_512x512_{iterations}k",
        dataset=dataset,
        depth=depth,
        align_corners=False,
        test=TestSettings(mode="whole", scale=(2048, 512)),
        metrics=_metrics(miou, ms_flip),
        crop_size=(512, 512),
        iterations=iterations * 1000,
        batch_size=16,
        mmseg_config=f"danet_r{depth}-d8_4xb4-{iterations}k_{dataset.name}-512x512",
        checkpoint_file=f"danet_r{depth}-d8_512x512_{iterations}k_{dataset.name}_{stamp}",
    )


# mmseg's DANet README and metafile (reference section 1.3).
_MMSEG_DANETS = (
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


# Shipped inside the package, trained by weights/train_demo_preset.py: no download.
_BUNDLED = (
    Preset(
        name="danet_demo_shapes",
        architecture="DANet",
        config={
            "num_classes": 4,
            "depth": 50,
            "output_stride": 8,
            "stem_channels": 8,
            "base_channels": 4,
            "head_channels": 16,
            "pam_channels": 4,
            "aux_channels": 8,
            "align_corners": False,
        },
        source=BundledFolder("danet_demo_shapes"),
        description="Synthetic street scenes, 4 classes, R50 at 1/16 width",
        dataset=SYNTHETIC_SCENES,
        test=TestSettings(mode="whole"),
        metrics={"mIoU": 96.22},  # on 64 held-out generated scenes (metadata.json)
        training={"script": "weights/train_demo_preset.py"},
    ),
)


def _imagenet_backbone(depth, sha256_prefix):
    name = f"resnet{depth}_v1c"
    return Preset(
        name=name,
        architecture="ResNetV1c",
        config={"depth": depth},
        # mmengine/hub/openmmlab.json: open-mmlab://resnet{depth}_v1c.
        source=MmsegCheckpoint(f"{name}-{sha256_prefix}.pth", root=PRETRAIN_ROOT),
        description=(
            f"ResNet-V1c-{depth} trained on ImageNet-1k: the backbone every mmseg DANet "
            f"starts from (open-mmlab://{name})"
        ),
        training={"dataset": "ImageNet-1k"},
        # Third-party weights that OpenMMLab redistributes; they publish no license for them.
        license="other",
        hub=_hub(name),
    )


_BACKBONES = (_imagenet_backbone(50, "2cccc1ad"), _imagenet_backbone(101, "e67eebb6"))


def _best_single_scale_aliases(presets):
    """`danet_r{depth}_{dataset}` → the preset of that backbone and dataset with the best mIoU."""
    best = {}
    for preset in presets:
        alias = f"danet_r{preset.depth}_{preset.dataset.name}"
        if alias not in best or preset.metrics["mIoU"] > best[alias].metrics["mIoU"]:
            best[alias] = preset
    return {alias: preset.name for alias, preset in best.items()}


ALIASES = types.MappingProxyType(_best_single_scale_aliases(_MMSEG_DANETS))


class PresetTable(collections.abc.Mapping):
    """A read-only mapping of preset names to `Preset`s that also answers to the aliases.

    The one table of every preset: `DANet.presets`, `ResNetV1c.presets`, `list_presets()`,
    `keras-danet presets` and the unknown-name message all read it.
    """

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

    def where(self, **fields):
        """The presets whose fields equal `fields`, e.g. `where(architecture="ResNetV1c")`."""
        return [
            preset
            for preset in self._presets.values()
            if all(getattr(preset, key) == value for key, value in fields.items())
        ]


PRESETS = PresetTable(_MMSEG_DANETS + _BUNDLED + _BACKBONES)


def bundled_preset_folder(name):
    return PRESETS[name].source.folder


def unknown_preset_message(name):
    known = [known for known in (*ALIASES, *PRESETS) if known != name]
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return (
        f"Unknown preset {name!r}.{hint} keras_danet.list_presets() names them all; a local "
        "folder or an hf://org/repo handle works too."
    )


def list_presets(include_aliases=True):
    """Names of every preset: the 16 mmseg DANet checkpoints, the bundled demo, the two
    ImageNet backbones, then the 6 aliases. `DANet.presets[name]` describes each.

    Example:
    >>> keras_danet.list_presets()[:2]
    ['danet_r50_d8_cityscapes_512x1024_40k', 'danet_r101_d8_cityscapes_512x1024_40k']
    """
    return list(PRESETS) + (list(ALIASES) if include_aliases else [])


def markdown_table():
    """The preset table as Markdown, for the README and the model cards."""
    aliases = {}
    for alias, name in ALIASES.items():
        aliases.setdefault(name, []).append(alias)
    lines = [
        "| preset | alias | dataset | crop | schedule | test mode | mIoU | ms+flip mIoU |",
        "|---|---|---|---|---|---|---:|---:|",
    ]
    for preset in _MMSEG_DANETS:
        test, training, metrics = preset.test, preset.training, preset.metrics
        mode = test.mode if test.mode == "whole" else f"slide {test.crop[0]}/{test.stride[0]}"
        ms_flip = f"{metrics['mIoU_ms_flip']:.2f}" if metrics.get("mIoU_ms_flip") else "–"
        crop = training["crop_size"]
        lines.append(
            f"| `{preset.name}` | {', '.join(f'`{a}`' for a in aliases.get(preset.name, []))} "
            f"| {preset.dataset.title} | {crop[0]}x{crop[1]} "
            f"| {training['iterations'] // 1000}k x {training['batch_size']} | {mode} "
            f"| {metrics['mIoU']:.2f} | {ms_flip} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())

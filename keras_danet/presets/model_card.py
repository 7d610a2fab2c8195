"""Hugging Face model cards (README.md) for preset folders, written from their `Preset` record.

One writer for every kind of preset: a converted mmseg checkpoint, an ImageNet backbone, the
bundled demo or a user's fine-tune. The YAML front matter is what the Hub indexes (license,
tags, datasets, model-index metrics); the prose says what the weights are and how to use them.
"""

import json
import re

# Plain YAML scalars that read back as the same string (not a number, bool or null).
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9._-]*")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null"}

CITATION = """@inproceedings{fu2019dual,
  title={Dual Attention Network for Scene Segmentation},
  author={Fu, Jun and Liu, Jing and Tian, Haijie and Li, Yong and Bao, Yongjun and Fang, Zhiwei and Lu, Hanqing},
  booktitle={CVPR},
  year={2019}
}"""  # noqa: E501

_METRIC_NAMES = {
    "mIoU": ("mean_iou", "mIoU (single scale)"),
    "mIoU_ms_flip": ("mean_iou", "mIoU (multi-scale + flip)"),
    "mDice": ("mean_dice", "mDice"),
}


def _yaml(value):
    """A scalar as YAML flow text: JSON strings are valid YAML and quote what needs quoting."""
    if isinstance(value, str) and _PLAIN.fullmatch(value) and value.lower() not in _YAML_WORDS:
        return value
    return json.dumps(value)


def model_card(preset, metadata, handle=None, alias=None):
    """The README.md of a preset folder.

    `preset` is its `Preset` (from the table, or `Preset.from_folder`), `metadata` its
    metadata.json, `handle` what `from_preset` should be given in the usage snippet (the
    alias or name by default; `hf://user/repo` for an upload).
    """
    handle = handle or alias or preset.name
    dataset = preset.dataset
    license_id = (preset.license or "other").lower()
    tags = ["keras", "keras-danet", "semantic-segmentation"]
    if preset.architecture == "DANet":
        tags.insert(2, "danet")
    if metadata.get("source_url") or metadata.get("checkpoint_url"):
        tags.append("mmsegmentation")
    lines = [
        "---",
        f"license: {_yaml(license_id)}",
        # The Hub asks a name and a link of a license it does not know ("other").
        "license_name: see-the-source" if license_id == "other" else None,
        f"license_link: {_yaml(_source_url(metadata))}"
        if license_id == "other" and _source_url(metadata)
        else None,
        "library_name: keras",
        "pipeline_tag: image-segmentation" if preset.architecture == "DANet" else None,
        f"tags: [{', '.join(tags)}]",
        f"datasets: [{_yaml(dataset.name)}]" if dataset else None,
    ]
    metrics = [(k, v) for k, v in preset.metrics.items() if isinstance(v, (int, float))]
    if metrics and dataset:
        lines += [
            "model-index:",
            f"  - name: {_yaml(preset.name)}",
            "    results:",
            "    - task: {type: image-segmentation, name: Semantic Segmentation}",
            f"      dataset: {{name: {_yaml(dataset.title)}, type: {_yaml(dataset.name)}}}",
            "      metrics:",
        ]
        for key, value in metrics:
            kind, name = _METRIC_NAMES.get(key, (key.lower(), key))
            lines.append(
                f"      - {{type: {_yaml(kind)}, value: {float(value)}, name: {_yaml(name)}}}"
            )
    lines += ["---", "", f"# {preset.name}", "", _summary(preset), ""]
    lines += ["```python", "import keras_danet", *_usage(preset, handle), "```", ""]
    lines += _facts_table(preset, metadata)
    if dataset:
        lines += ["", "## Classes", "", ", ".join(f"`{name}`" for name in dataset.class_names)]
    lines += [
        "",
        "## License and citation",
        "",
        f"License: {preset.license or 'not stated'}.",
        "",
        "```bibtex",
        CITATION,
        "```",
        "",
    ]
    return "\n".join(line for line in lines if line is not None)


def _source_url(metadata):
    return metadata.get("source_url") or metadata.get("checkpoint_url")


def _summary(preset):
    what = (preset.description or preset.name).rstrip(".")
    if preset.architecture == "ResNetV1c":
        return (
            f"{what}. A [keras-danet](https://github.com/keras-danet/keras-danet) backbone "
            "preset for Keras 3 (TensorFlow, JAX or PyTorch): the starting point of mmseg's "
            "DANet recipe."
        )
    classes = f" ({preset.num_classes} classes)" if preset.num_classes else ""
    return (
        f"{what}{classes}. A [keras-danet](https://github.com/keras-danet/keras-danet) preset: "
        "DANet for Keras 3, on TensorFlow, JAX or PyTorch, number for number as "
        "mmsegmentation."
    )


def _usage(preset, handle):
    if preset.architecture == "ResNetV1c":
        return [
            f'model = keras_danet.DANet(num_classes=6, backbone="{handle}")',
            "model.compile()  # mmseg's recipe; then model.fit(your_data)",
        ]
    return [
        f'model = keras_danet.DANet.from_preset("{handle}")',
        'labels = model.segment("street.png")  # (H, W) class indices, at the image size',
    ]


def _facts_table(preset, metadata):
    config = dict(preset.config)
    rows = [("architecture", _architecture(preset, config))]
    if preset.dataset:
        rows.append(("dataset", preset.dataset.title))
    for key, value in preset.metrics.items():
        shown = f"{value:.2f}" if isinstance(value, (int, float)) else str(value)
        rows.append((_METRIC_NAMES.get(key, (None, key))[1], shown))
    if preset.test is not None:
        mode = preset.test.mode
        if mode == "slide":
            crop, stride = preset.test.crop, preset.test.stride
            mode = f"slide, {crop[0]}x{crop[1]} windows every {stride[0]} px"
        rows.append(("test mode", mode))
    if preset.architecture == "DANet":
        rows.append(("align_corners", str(bool(preset.config.get("align_corners")))))
    training = dict(preset.training)
    if training.get("crop_size"):
        crop = training["crop_size"]
        rows.append(
            (
                "training",
                f"{crop[0]}x{crop[1]} crops, {training.get('iterations')} iterations, "
                f"batch {training.get('batch_size')}",
            )
        )
    elif training:
        rows.append(("training", ", ".join(f"{k}: {v}" for k, v in training.items())))
    for key, label in (
        ("pretrained", "fine-tuned from"),
        ("backbone", "backbone weights"),
        ("mmseg_config", "mmseg config"),
        ("source_url", "source"),
        ("source_sha256", "source sha256"),
        ("weights_sha256", "weights sha256"),
    ):
        value = training.get(key) if key == "mmseg_config" else metadata.get(key)
        if value:
            rows.append(
                (label, f"`{value}`" if "sha256" in key or key == "mmseg_config" else value)
            )
    lines = ["| | |", "|---|---|"]
    lines += [f"| {label} | {str(value).replace('|', '/')} |" for label, value in rows]
    if preset.metrics and metadata.get("source_url"):
        lines += ["", "mIoU figures are mmsegmentation's, on the validation set."]
    return lines


def _architecture(preset, config):
    depth = config.get("depth", preset.depth)
    if preset.architecture == "ResNetV1c":
        return f"ResNet-V1c-{depth}"
    widths = ", ".join(
        f"{key}={config[key]}"
        for key in ("stem_channels", "base_channels", "head_channels")
        if key in config
    )
    return f"DANet, ResNet-V1c-{depth}-D8 backbone" + (f" ({widths})" if widths else "")

"""Converts mmsegmentation checkpoints (`.pth`) into keras_danet models: DANet checkpoints into
`DANet`, and ResNet-V1c backbones (mmseg's ImageNet weights) into `ResNetV1c`."""

import os
import re

import keras
import numpy as np

from keras_danet.models.danet import DANet
from keras_danet.models.resnet_v1c import MMSEG_DEPTHS, STAGE_BLOCKS, ResNetV1c
from keras_danet.presets.files import PresetError
from keras_danet.presets.registry import register_converter

# The ImageNet classifier of a backbone checkpoint: not part of a segmentation backbone
# (mmseg's own loader skips it too, as an unexpected key).
_IMAGENET_CLASSIFIER_KEYS = ("fc.weight", "fc.bias")


class CheckpointError(ValueError):
    """An mmseg checkpoint that cannot be read or does not fit the model."""


def convert_mmseg_checkpoint(path, *, align_corners=None, output_stride=None):
    """Builds a `DANet` holding the weights of an mmsegmentation DANet checkpoint.

    The depth, widths and number of classes come from the state dict's shapes;
    `align_corners` and the output stride from the config text stored in the checkpoint's
    `meta` (mmseg writes it there), unless given. Every tensor is assigned, BatchNorm running
    statistics and the PAM/CAM gamma scalars included; a missing, leftover or misshapen
    tensor raises `CheckpointError` listing the keys and shapes involved.

    Needs PyTorch to read the file; it is loaded with `torch.load(weights_only=True)`.

    Example:
    >>> model = keras_danet.convert_mmseg_checkpoint(
    ...     "danet_r50-d8_512x1024_40k_cityscapes_20200605_191324-c0dbfa5f.pth")
    """
    state_dict, meta = read_mmseg_checkpoint(path)
    config = infer_model_config(state_dict, meta, path)
    if align_corners is not None:
        config["align_corners"] = bool(align_corners)
    if output_stride is not None:
        config["output_stride"] = int(output_stride)
    model = DANet(**config)
    load_mmseg_state_dict(model, state_dict, source=path)
    return model


def convert_mmseg_backbone(path, *, output_stride=8):
    """Builds a `ResNetV1c` holding the weights of an mmseg / mmcv ResNet-V1c checkpoint.

    Takes the ImageNet files that mmseg's configs start from (`open-mmlab://resnet50_v1c`,
    keys `stem.0.weight`, `layer1.0.conv1.weight`..., and the ImageNet `fc`, which is left
    out), or any checkpoint whose keys carry a `backbone.` prefix (a DANet's backbone). The
    depth and widths come from the shapes; every tensor is assigned or reported.

    Example:
    >>> backbone = keras_danet.convert.convert_mmseg_backbone("resnet50_v1c-2cccc1ad.pth")
    """
    state_dict, _ = read_mmseg_checkpoint(path)
    if any(key.startswith("backbone.") for key in state_dict):
        state_dict = {
            key.removeprefix("backbone."): value
            for key, value in state_dict.items()
            if key.startswith("backbone.")
        }
    state_dict = {k: v for k, v in state_dict.items() if k not in _IMAGENET_CLASSIFIER_KEYS}
    prefixed = {f"backbone.{key}": value for key, value in state_dict.items()}
    for key in ("backbone.stem.6.weight", "backbone.layer1.0.conv1.weight"):
        _shape(prefixed, key, path)
    model = ResNetV1c(
        depth=_depth(prefixed, path),
        output_stride=output_stride,
        stem_channels=int(prefixed["backbone.stem.6.weight"].shape[0]),
        base_channels=int(prefixed["backbone.layer1.0.conv1.weight"].shape[0]),
        name="backbone",
    )
    _assign(model.layers, prefixed, path)
    return model


def read_mmseg_checkpoint(path):
    """Returns `(state_dict, meta)` of an mmseg `.pth` file, tensors as NumPy arrays."""
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            "Reading an mmseg checkpoint needs PyTorch: pip install 'keras-danet[torch]'"
        ) from error
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No mmseg checkpoint at {path}.")
    try:
        # weights_only: a checkpoint is data, never code to unpickle and run.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError...
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint (truncated, corrupt, or holding "
            f"objects that weights_only loading refuses): {error}"
        ) from error
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} holds a {type(checkpoint).__name__}, not a dict.")
    state_dict = checkpoint.get("state_dict", checkpoint)
    meta = checkpoint.get("meta") or {}
    arrays = {}
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: state_dict[{key!r}] is a {type(value).__name__}.")
        # Multi-GPU training wrappers prefix every key; released mmseg files have no prefix.
        arrays[key.removeprefix("module.")] = value.detach().cpu().numpy()
    return arrays, meta


def _shape(state_dict, key, path):
    if key not in state_dict:
        raise CheckpointError(
            f"{path} is not an mmseg DANet checkpoint: it has no {key!r} "
            f"(its first keys: {', '.join(list(state_dict)[:5])})."
        )
    return state_dict[key].shape


def infer_model_config(state_dict, meta=None, path="checkpoint"):
    """DANet constructor arguments read off an mmseg DANet state dict (and its meta)."""
    for key in ("backbone.stem.6.weight", "decode_head.conv_seg.weight"):
        _shape(state_dict, key, path)  # a clear error for files that are no DANet at all
    if not any(key.startswith("auxiliary_head.") for key in state_dict):
        raise CheckpointError(
            f"{path} is a DANet checkpoint without its FCN auxiliary head (no auxiliary_head.* "
            "keys): every mmseg DANet config trains one, and keras_danet's DANet has it. "
            "Convert a checkpoint saved with the auxiliary head."
        )
    config = {
        "depth": _depth(state_dict, path),
        "stem_channels": _shape(state_dict, "backbone.stem.6.weight", path)[0],
        "base_channels": _shape(state_dict, "backbone.layer1.0.conv1.weight", path)[0],
        "head_channels": _shape(state_dict, "decode_head.pam_in_conv.conv.weight", path)[0],
        "pam_channels": _shape(state_dict, "decode_head.pam.query_project.weight", path)[0],
        "aux_channels": _shape(state_dict, "auxiliary_head.convs.0.conv.weight", path)[0],
        "num_classes": _shape(state_dict, "decode_head.conv_seg.weight", path)[0],
    }
    config = {key: int(value) for key, value in config.items()}
    config.update(_read_config_text((meta or {}).get("config", "")))
    return config


def _depth(state_dict, path):
    """50 or 101, from the number of blocks in each stage of `backbone.layer*` keys."""
    blocks = tuple(
        len({key.split(".")[2] for key in state_dict if key.startswith(f"backbone.layer{s}.")})
        for s in range(1, 5)
    )
    depths = {STAGE_BLOCKS[depth]: depth for depth in MMSEG_DEPTHS}
    if blocks not in depths:
        raise CheckpointError(
            f"{path}: backbone stages have {blocks} blocks; ResNet-V1c 50 and 101 have "
            f"{STAGE_BLOCKS[50]} and {STAGE_BLOCKS[101]}."
        )
    return depths[blocks]


def _read_config_text(text):
    """align_corners and the output stride from the mmseg config text in a checkpoint."""
    found = {}
    if not isinstance(text, str):
        return found
    values = set(re.findall(r"align_corners\s*=\s*(True|False)", text))
    if len(values) == 1:  # both heads agree, as in every DANet config
        found["align_corners"] = values.pop() == "True"
    strides = re.search(r"strides\s*=\s*\(\s*1\s*,\s*2\s*,\s*(\d)\s*,\s*1\s*\)", text)
    if strides:
        found["output_stride"] = 16 if strides.group(1) == "2" else 8
    return found


def mmseg_key_prefix(layer_name):
    """The mmseg state-dict prefix of a DANet layer.

    For example `layer3_block2_bn1` → `backbone.layer3.2.bn1`; None for an unknown name.
    """
    stem = re.fullmatch(r"stem_(conv|bn)([123])", layer_name)
    if stem:
        index = (int(stem.group(2)) - 1) * 3 + (0 if stem.group(1) == "conv" else 1)
        return f"backbone.stem.{index}"
    block = re.fullmatch(r"layer(\d)_block(\d+)_(\w+)", layer_name)
    if block:
        stage, number, part = block.groups()
        part = {"downsample_conv": "downsample.0", "downsample_bn": "downsample.1"}.get(part, part)
        return f"backbone.layer{stage}.{number}.{part}"
    head = re.fullmatch(r"(pam|cam)_(in|out)_(conv|bn)", layer_name)
    if head:
        branch, position, kind = head.groups()
        return f"decode_head.{branch}_{position}_conv.{kind}"
    return {
        "pam": "decode_head.pam",
        "cam": "decode_head.cam",
        "classifier": "decode_head.conv_seg",
        "pam_classifier": "decode_head.pam_conv_seg",
        "cam_classifier": "decode_head.cam_conv_seg",
        "aux_conv": "auxiliary_head.convs.0.conv",
        "aux_bn": "auxiliary_head.convs.0.bn",
        "aux_classifier": "auxiliary_head.conv_seg",
    }.get(layer_name)


def _conv_kernel(array):
    return np.transpose(array, (2, 3, 1, 0))  # PyTorch OIHW → Keras HWIO


def _danet_layers(model):
    nested = (model.backbone, model.training_heads)
    layers = [layer for layer in model.layers if layer not in nested]
    return model.backbone.layers + layers + model.training_heads.layers


def _variables_and_keys(layers):
    """Yields (keras variable, mmseg key, transform) for every weight of `layers`."""
    for layer in layers:
        if not layer.weights:
            continue
        prefix = mmseg_key_prefix(layer.name)
        if prefix is None:
            raise CheckpointError(f"No mmseg key is known for the layer {layer.name!r}.")
        kind = type(layer).__name__
        if kind == "Conv2D":
            yield layer.kernel, f"{prefix}.weight", _conv_kernel
            if layer.bias is not None:
                yield layer.bias, f"{prefix}.bias", None
        elif isinstance(layer, keras.layers.BatchNormalization):
            yield layer.gamma, f"{prefix}.weight", None
            yield layer.beta, f"{prefix}.bias", None
            yield layer.moving_mean, f"{prefix}.running_mean", None
            yield layer.moving_variance, f"{prefix}.running_var", None
        elif kind == "PositionAttention":
            for projection in (layer.query_project, layer.key_project, layer.value_project):
                name = f"{prefix}.{projection.name}"
                yield projection.kernel, f"{name}.weight", _conv_kernel
                yield projection.bias, f"{name}.bias", None
            yield layer.gamma, f"{prefix}.gamma.scale", _scalar
        elif kind == "ChannelAttention":
            yield layer.gamma, f"{prefix}.gamma.scale", _scalar
        else:
            raise CheckpointError(f"No conversion is known for the {kind} layer {layer.name!r}.")


def _scalar(array):
    # mmcv's Scale stores a 0-d tensor; the official DANet code a shape-[1] one.
    return np.reshape(array, ()) if np.size(array) == 1 else array


def load_mmseg_state_dict(model, state_dict, source="state_dict"):
    """Assigns an mmseg DANet state dict (NumPy arrays) to a matching `DANet`."""
    _assign(_danet_layers(model), state_dict, source)


def _assign(layers, state_dict, source):
    """Assigns every weight of `layers` from `state_dict`, or raises listing each problem."""
    assignments, problems, used = [], [], set()
    weights = [weight for layer in layers for weight in layer.weights]
    for variable, key, transform in _variables_and_keys(layers):
        if key not in state_dict:
            problems.append(f"missing {key} (for {variable.path}, shape {tuple(variable.shape)})")
            continue
        used.add(key)
        value = state_dict[key]
        value = transform(value) if transform else value
        if tuple(value.shape) != tuple(variable.shape):
            problems.append(
                f"shape of {key}: {tuple(state_dict[key].shape)} in the checkpoint, the model "
                f"needs {tuple(variable.shape)} (after layout conversion) for {variable.path}"
            )
            continue
        assignments.append((variable, value))
    # num_batches_tracked only steers BN momentum when momentum=None; no Keras counterpart.
    leftover = sorted(
        key for key in state_dict if key not in used and not key.endswith(".num_batches_tracked")
    )
    problems += [f"unused {key} {tuple(state_dict[key].shape)}" for key in leftover]
    if problems:
        raise CheckpointError(
            f"{source} does not fit the model ({len(problems)} problems):\n  "
            + "\n  ".join(problems)
        )
    broken = [key for key in sorted(used) if not np.isfinite(state_dict[key]).all()]
    if broken:  # a diverged training run: converting would give a model of NaN
        raise CheckpointError(
            f"{source} holds NaN or infinite values in {len(broken)} tensors: "
            + ", ".join(broken[:8])
            + (" ..." if len(broken) > 8 else "")
        )
    assigned = {id(variable) for variable, _ in assignments}
    unassigned = [v.path for v in weights if id(v) not in assigned]
    if unassigned:  # a model layer the mapping forgot: a bug here, never silently random
        raise CheckpointError(f"Model weights with no checkpoint source: {unassigned}")
    for variable, value in assignments:
        variable.assign(value.astype(variable.dtype))


def _require_torch():
    try:
        import torch  # noqa: F401  (the converter reads .pth files with it)
    except ImportError:
        raise ImportError(
            "The preset is not on the Hub, and converting the original mmseg checkpoint needs "
            "PyTorch: pip install 'keras-danet[torch]'"
        ) from None


def _danet_of_preset(path, preset, url):
    """A named DANet preset's original checkpoint, checked against what the preset says."""
    model = convert_mmseg_checkpoint(path, align_corners=bool(preset.config.get("align_corners")))
    found = (model.depth, model.num_classes)
    if found != (preset.depth, preset.num_classes):
        raise PresetError(
            f"{url} holds a DANet R{found[0]} with {found[1]} classes; the preset "
            f"{preset.name} is R{preset.depth} with {preset.num_classes} classes."
        )
    return model


def _backbone_of_preset(path, preset, url):
    model = convert_mmseg_backbone(path)
    if model.depth != preset.depth:
        raise PresetError(
            f"{url} holds a ResNet-V1c-{model.depth}; the preset {preset.name} is "
            f"ResNet-V1c-{preset.depth}."
        )
    return model


# The presets package converts a named preset's original checkpoint through these.
register_converter("DANet", _danet_of_preset, check=_require_torch)
register_converter("ResNetV1c", _backbone_of_preset, check=_require_torch)

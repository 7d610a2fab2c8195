#!/usr/bin/env python
"""Fixtures for starting DANet from an ImageNet backbone, made by mmsegmentation itself.

mmseg trains every DANet from `open-mmlab://resnet{50,101}_v1c`: the backbone's weights come
from that file, and the heads are initialised by mmseg's own rules. This tool writes a tiny
stand-in for that file with mmseg's `ResNetV1c` (random weights, randomised BN statistics, and
an ImageNet `fc` classifier, as the released files carry), then builds mmseg's DANet from it
(`backbone.init_cfg = Pretrained`, the configs' `pretrained=`) and records, over --draws
seeds, every tensor `init_weights()` gives: the backbone's (equal to the file's) and the
heads' (random draws of mmseg's initialisers, for a test of the distributions).

    env OMP_NUM_THREADS=1 .venv-mmseg/bin/python tools/mmseg_backbone_reference.py \
        --out tests/fixtures/resnet50_v1c_tiny

Outputs in --out:
  resnet50_v1c_tiny.pth  {'state_dict'} as the open-mmlab files: stem.*, layer*.*, fc.*
  initial_state.npz      backbone/<key>: the backbone after init_weights (seed 0);
                         head/<key>: values of the head tensor, pooled over the draws
                         (at most 4096; a scalar's or a constant's every draw);
                         config: the sizes used, as JSON text
"""

import argparse
import json
import os
import sys
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mmseg_reference as reference  # noqa: E402  (mmcv._ext stub, mmseg scope)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402

# Head widths as mmseg's (pam 64) or near them, so that every head tensor has enough values
# for a two-sample test of its distribution; the backbone is tiny (its values are exact).
SIZES = dict(
    depth=50,
    stem_channels=8,
    base_channels=4,
    head_channels=64,
    pam_channels=64,
    aux_channels=64,
    num_classes=150,
    align_corners=False,
)
IMAGENET_CLASSES = 1000
SAMPLE = 4096


@torch.no_grad()
def tiny_imagenet_backbone(seed):
    """mmseg's ResNetV1c with random weights and BN statistics, plus an ImageNet fc."""
    torch.manual_seed(seed)
    backbone = MODELS.build(
        dict(
            type="ResNetV1c",
            depth=SIZES["depth"],
            stem_channels=SIZES["stem_channels"],
            base_channels=SIZES["base_channels"],
            norm_cfg=dict(type="BN", requires_grad=True),
        )
    )
    backbone.init_weights()
    generator = torch.Generator().manual_seed(seed + 1)
    for module in backbone.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            shape = module.weight.shape
            module.weight.copy_(torch.rand(shape, generator=generator) + 0.5)
            module.bias.copy_(torch.randn(shape, generator=generator) * 0.1)
            module.running_mean.copy_(torch.randn(shape, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(shape, generator=generator) + 0.5)
            module.num_batches_tracked.fill_(1000)
    state = {k: v.detach().clone() for k, v in backbone.state_dict().items()}
    width = SIZES["base_channels"] * 8 * 4
    state["fc.weight"] = torch.randn(IMAGENET_CLASSES, width, generator=generator) * 0.01
    state["fc.bias"] = torch.zeros(IMAGENET_CLASSES)
    return state


def danet_from(checkpoint, seed):
    """mmseg's DANet whose backbone starts from `checkpoint`, after init_weights()."""
    args = SimpleNamespace(**SIZES)
    cfg = reference.build_config(args)
    cfg.model.backbone.init_cfg = dict(type="Pretrained", checkpoint=checkpoint)
    torch.manual_seed(seed)
    model = reference.build_model(cfg)
    model.init_weights()
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--draws", type=int, default=16, help="seeds of the heads' init")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    checkpoint = os.path.join(args.out, "resnet50_v1c_tiny.pth")
    torch.save({"state_dict": tiny_imagenet_backbone(args.seed)}, checkpoint)
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]

    arrays, heads = {}, {}
    for draw in range(args.draws):
        state = danet_from(checkpoint, seed=args.seed + 100 + draw).state_dict()
        for key, value in state.items():
            if key.endswith("num_batches_tracked"):
                continue
            if key.startswith("backbone."):
                if draw == 0:
                    arrays[key] = value.numpy()
                    expected = saved[key.removeprefix("backbone.")]
                    if not torch.equal(value, expected):
                        sys.exit(f"{key}: mmseg did not load the backbone file")
            else:
                heads.setdefault(key, []).append(value.numpy())
    for key, draws in heads.items():
        # Every draw of a small tensor, the first SAMPLE values of the pooled draws of a
        # large one: plenty for a two-sample test, and a small file.
        pooled = np.concatenate([draw.ravel() for draw in draws])[:SAMPLE]
        arrays[f"head/{key.replace('.', '/')}"] = pooled
    arrays = {
        (
            f"backbone/{k.removeprefix('backbone.').replace('.', '/')}"
            if k.startswith("backbone.")
            else k
        ): v
        for k, v in arrays.items()
    }
    arrays["config"] = np.array(json.dumps(SIZES))
    np.savez_compressed(os.path.join(args.out, "initial_state.npz"), **arrays)
    if reference.STUB_CALLS:
        sys.exit(f"mmcv._ext stubs were called ({reference.stubs_called()})")
    print(
        f"{len(saved)} backbone-file tensors, {len(heads)} head tensors x {args.draws} draws "
        f"-> {args.out}"
    )


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""mmseg 1.2.2's own logits in float64, float32 and under torch.autocast (bfloat16, float16).

The yardstick for keras_danet's mixed-precision policies: how far mmseg's own reduced
precision lands from its float32, on the tiny `danet_r50_tiny` checkpoint and a smooth
48x64 RGB image. Writes tests/fixtures/danet_r50_tiny/precision.npz with `image` (RGB
0-255, HWC float32), `logits_float32` (encode_decode, NCHW), and for float64, bfloat16 and
float16: `error_<precision>`, max|logits - logits_float32| / std(logits_float32), and
`agreement_<precision>`, the share of pixels whose argmax equals float32's.

Run in the mmseg venv (see mmseg_reference.py):
    .venv-mmseg/bin/python tools/mmseg_precision_reference.py
"""

import argparse
import copy
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mmseg_inference_reference as inference  # noqa: E402  (mmseg scope, model loading)
import numpy as np  # noqa: E402
import torch  # noqa: E402


@torch.no_grad()
def logits(model, x, autocast_dtype=None):
    shape = tuple(x.shape[-2:])
    metas = [dict(img_shape=shape, ori_shape=shape, pad_shape=shape)]
    if autocast_dtype is None:
        return model.encode_decode(x, metas).numpy()
    with torch.autocast("cpu", dtype=autocast_dtype):
        return model.encode_decode(x, metas).float().numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(inference.FIXTURES, "danet_r50_tiny"))
    args = parser.parse_args()
    model = inference.load_model("danet_r50_tiny", 19, False, dict(mode="whole"))
    image = inference.rgb_image(48, 64, seed=11)
    cfg = inference.reference.build_config(
        argparse.Namespace(depth=50, num_classes=19, align_corners=False, **inference.TINY)
    )
    x = inference.normalize(image, cfg)
    reference = logits(model, x)
    others = {
        "float64": logits(copy.deepcopy(model).double(), x.double()),
        "bfloat16": logits(model, x, torch.bfloat16),
        "float16": logits(model, x, torch.float16),
    }
    arrays = dict(image=image, logits_float32=reference)
    for name, values in others.items():
        arrays[f"error_{name}"] = np.abs(values - reference).max() / reference.std()
        arrays[f"agreement_{name}"] = np.mean(values.argmax(1) == reference.argmax(1))
        print(
            f"mmseg {name} vs float32: max|diff| / std = {arrays[f'error_{name}']:.2e}, "
            f"argmax agreement {arrays[f'agreement_{name}']:.4f}"
        )
    np.savez_compressed(os.path.join(args.out, "precision.npz"), **arrays)


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Golden fixture for DANet's training step, made by mmsegmentation itself.

Builds the same tiny, randomised DANet as mmseg_reference.py (mmseg 1.2.2's own
model from its own config), with dropout 0 so that the step is deterministic,
then in train mode (BatchNorm on batch statistics, running stats updated):

  1. mmseg's `model.loss(inputs, data_samples)` on an odd-sized batch whose
     labels are about 10 % ignore index 255: the four loss terms
     (decode.pam_cam / decode.pam / decode.cam / aux .loss_ce);
  2. their sum, backward, and one `torch.optim.SGD(lr, momentum 0.9,
     weight_decay 5e-4)` step over every parameter, as mmseg's DANet
     schedules configure it (the first poly-schedule step runs at lr0).

It writes checkpoint.pth (the weights before the step, eval-mode BN stats),
checkpoint_after.pth (after the step, with the BN running statistics the
train-mode forward moved) and reference.npz:
  input, input_rgb_0_255_nhwc   the batch (see mmseg_reference.py)
  labels                        (batch, H, W) uint8, 255 = ignored
  loss_main, loss_pam, loss_cam, loss_aux, loss   weighted terms and total
  *_float64                     the same run in float64, to size fp32 noise
  update_cosine_float64         cosine between the fp32 and fp64 weight updates
  learning_rate, momentum, weight_decay
and sgd_poly.npz: torch.optim.SGD under mmengine's PolyLR on a small
least-squares problem, step by step (see optimizer_trajectories).

Run it in the mmseg venv (see mmseg_reference.py):
    .venv-mmseg/bin/python tools/mmseg_training_reference.py --out DIR \
        --stem-channels 8 --base-channels 4 --head-channels 16 \
        --pam-channels 4 --aux-channels 8 --height 57 --width 75 --batch 2
"""

import argparse
import copy
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mmseg_reference as reference  # noqa: E402  (installs the mmcv._ext stub first)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402

TERMS = {
    "decode.pam_cam.loss_ce": "loss_main",
    "decode.pam.loss_ce": "loss_pam",
    "decode.cam.loss_ce": "loss_cam",
    "aux.loss_ce": "loss_aux",
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--depth", type=int, choices=(50, 101), default=50)
    for name, default in [
        ("--num-classes", 19),
        ("--stem-channels", 64),
        ("--base-channels", 64),
        ("--head-channels", 512),
        ("--pam-channels", 64),
        ("--aux-channels", 256),
        ("--height", 57),
        ("--width", 75),
        ("--batch", 2),
        ("--seed", 0),
        ("--gamma", 0.5),
        ("--lr", 0.01),
        ("--momentum", 0.9),
        ("--weight-decay", 5e-4),
        ("--ignore-fraction", 0.1),
        ("--out", "mmseg_training_out"),
    ]:
        p.add_argument(name, type=type(default), default=default)
    p.add_argument("--align-corners", action="store_true")
    p.add_argument(
        "--avg-non-ignore",
        action="store_true",
        help="the decode and aux losses' avg_non_ignore option",
    )
    return p.parse_args()


def build(a):
    cfg = reference.build_config(a)
    cfg.model.decode_head.dropout_ratio = 0.0
    cfg.model.auxiliary_head.dropout_ratio = 0.0
    for head in (cfg.model.decode_head, cfg.model.auxiliary_head):
        head.loss_decode.avg_non_ignore = a.avg_non_ignore
    torch.manual_seed(a.seed)
    model = reference.build_model(cfg)
    model.init_weights()
    reference.randomize(model, a.seed, a.gamma)
    return cfg, model


def samples(labels, align_corners):
    out = []
    for label in labels:
        sample = SegDataSample()
        shape = tuple(label.shape)
        sample.set_metainfo(dict(img_shape=shape, ori_shape=shape, pad_shape=shape))
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(label[None].astype(np.int64)))
        out.append(sample)
    return out


def train_step(model, x, labels, a):
    """mmseg's loss, backward and one SGD step; returns the loss terms."""
    model.train()
    optimizer = torch.optim.SGD(
        model.parameters(), lr=a.lr, momentum=a.momentum, weight_decay=a.weight_decay
    )
    optimizer.zero_grad()
    losses = model.loss(x, samples(labels, a.align_corners))
    terms = {TERMS[key]: value for key, value in losses.items() if key in TERMS}
    total, _ = model.parse_losses(losses)
    total.backward()
    optimizer.step()
    out = {key: float(value.detach()) for key, value in terms.items()}
    out["loss"] = float(total.detach())
    return out


def optimizer_trajectories(out, steps=14, horizon=10):
    """torch.optim.SGD under mmengine's PolyLR on a well-conditioned least-squares problem.

    The optimizer and schedule mmseg builds from the DANet configs (SGD, momentum 0.9,
    PolyLR power 0.9 to 1e-4 per iteration), run past the horizon, with the configs'
    weight decay and with a strong one that makes coupled vs decoupled decay obvious.
    Writes sgd_poly.npz: the data, the start weights and each run's weights after every step.
    """
    from mmengine.optim.scheduler import PolyLR

    rng = np.random.RandomState(11)
    x = rng.randn(32, 5).astype(np.float32)
    y = rng.randn(32, 3).astype(np.float32)
    w0 = (rng.randn(5, 3) * 0.5).astype(np.float32)
    b0 = (rng.randn(3) * 0.5).astype(np.float32)
    arrays = dict(x=x, y=y, w0=w0, b0=b0, horizon=horizon, lr=0.1, eta_min=1e-4, power=0.9)
    for name, decay, nesterov in [
        ("recipe", 5e-4, False),
        ("strong_decay", 0.1, False),
        ("nesterov", 0.1, True),
    ]:
        w = torch.nn.Parameter(torch.from_numpy(w0.copy()))
        b = torch.nn.Parameter(torch.from_numpy(b0.copy()))
        optimizer = torch.optim.SGD(
            [w, b], lr=0.1, momentum=0.9, weight_decay=decay, nesterov=nesterov
        )
        scheduler = PolyLR(optimizer, eta_min=1e-4, power=0.9, begin=0, end=horizon, by_epoch=False)
        weights, biases, rates = [], [], []
        for _ in range(steps):
            optimizer.zero_grad()
            loss = 0.5 * ((torch.from_numpy(x) @ w + b - torch.from_numpy(y)) ** 2).mean()
            loss.backward()
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
            weights.append(w.detach().numpy().copy())
            biases.append(b.detach().numpy().copy())
        arrays.update(
            {
                f"{name}_weights": np.stack(weights),
                f"{name}_biases": np.stack(biases),
                f"{name}_learning_rates": np.array(rates),
                f"{name}_weight_decay": decay,
                f"{name}_nesterov": nesterov,
            }
        )
    np.savez(os.path.join(out, "sgd_poly.npz"), **arrays)


def flat_parameters(model):
    return torch.cat([p.detach().double().reshape(-1) for p in model.parameters()])


def main():
    a = parse_args()
    cfg, model = build(a)
    rng = np.random.RandomState(a.seed + 2)
    x = rng.randn(a.batch, 3, a.height, a.width).astype(np.float32)
    labels = rng.randint(0, a.num_classes, size=(a.batch, a.height, a.width))
    labels[rng.rand(*labels.shape) < a.ignore_fraction] = 255
    labels = labels.astype(np.uint8)

    os.makedirs(a.out, exist_ok=True)
    classes, palette = reference.class_meta(a.num_classes)
    meta = dict(
        CLASSES=classes,
        PALETTE=palette,
        config=cfg.pretty_text,
        seed=a.seed,
        note="tiny random DANet for a training-step fixture, dropout 0",
    )
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save({"meta": meta, "state_dict": before}, os.path.join(a.out, "checkpoint.pth"))

    model64 = copy.deepcopy(model).double()
    start = flat_parameters(model)
    out = train_step(model, torch.from_numpy(x), labels, a)
    if reference.STUB_CALLS:
        sys.exit(f"mmcv._ext stubs were called ({reference.stubs_called()}); nothing written")
    after = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save({"meta": meta, "state_dict": after}, os.path.join(a.out, "checkpoint_after.pth"))

    out64 = train_step(model64, torch.from_numpy(x).double(), labels, a)
    update32 = flat_parameters(model) - start
    update64 = flat_parameters(model64) - start
    cosine = float(update32 @ update64 / (update32.norm() * update64.norm()))

    mean = np.array(cfg.model.data_preprocessor.mean)[:, None, None]
    std = np.array(cfg.model.data_preprocessor.std)[:, None, None]
    arrays = dict(
        input=x,
        labels=labels,
        input_rgb_0_255_nhwc=np.ascontiguousarray(
            (x * std + mean).astype(np.float32).transpose(0, 2, 3, 1)
        ),
        learning_rate=a.lr,
        momentum=a.momentum,
        weight_decay=a.weight_decay,
        update_cosine_float64=cosine,
        update_norm_ratio_float64=float(update32.norm() / update64.norm()),
    )
    arrays.update({k: np.float64(v) for k, v in out.items()})
    arrays.update({f"{k}_float64": np.float64(v) for k, v in out64.items()})
    np.savez(os.path.join(a.out, "reference.npz"), **arrays)
    optimizer_trajectories(a.out)
    relative = {k: abs(out[k] - out64[k]) / abs(out64[k]) for k in out}
    print(
        f"losses {out} | fp32 vs fp64 relative {relative} | update cosine fp32/fp64 "
        f"{cosine:.6f}, norm ratio {arrays['update_norm_ratio_float64']:.6f} | "
        f"ignored {np.mean(labels == 255):.3f} | stub_calls={reference.stubs_called()} "
        f"-> {a.out}"
    )


if __name__ == "__main__":
    main()

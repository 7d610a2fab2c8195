#!/usr/bin/env python
r"""Golden fixtures for a Keras port of DANet, made by mmsegmentation itself.

Builds mmseg 1.2.2's DANet (ResNetV1c-D8 backbone, DAHead, FCNHead aux head)
from the model config inside the mmseg wheel, gives it random but
well-scaled weights, runs it in eval mode on the CPU and writes an
mmseg-format checkpoint plus every tensor a port must reproduce: loading the
checkpoint into the port and matching reference.npz proves the port equals
mmseg number for number, with no released weights downloaded.

Install into a venv of its own (mmseg pins mmcv < 2.2 and pulls opencv,
matplotlib and scipy, none of which belong in the port's environment):

    python3 -m venv venv-mmseg
    venv-mmseg/bin/python -m pip install torch==2.13.0 mmengine==0.10.7 \
        mmcv-lite==2.1.0 mmsegmentation==1.2.2 ftfy regex

Verified on a fresh venv (Python 3.11.7, Linux x86-64, 2 cores): 3.7 s for
the venv, 48 s for the pip line, 1.5 GB, `pip check` clean; torch
(2.13.0+cpu) and most other wheels came from local mirrors there.  On Linux,
PyPI's default torch wheel is the much larger CUDA build.  mmseg imports
ftfy and regex (mmseg/utils/tokenizer.py) without declaring them.  numpy 2
is fine here.

Why the in-process `mmcv._ext` stub: mmcv-lite is mmcv without its compiled
ops, yet `import mmseg.models` imports mmcv.ops (point_sample, DeformConv2d,
...), which fails on the missing `mmcv._ext`.  DANet calls none of those
ops, so this script puts a stand-in `mmcv._ext` into sys.modules of this
process only, before importing mmseg; its every attribute is a function
that raises if called.  Nothing installed is patched.  The tool reports
whether any stub was called and writes no fixture if one was.  With a full
mmcv (a real `_ext`) the stub is not installed.

Examples (tiny fixture for unit tests; full-size r50; r101 timing only):
    venv-mmseg/bin/python mmseg_reference.py --out fixtures/tiny \
        --stem-channels 8 --base-channels 4 --head-channels 16 \
        --pam-channels 4 --aux-channels 8 --height 64 --width 96
    venv-mmseg/bin/python mmseg_reference.py --seed 7 --out fixtures/r50
    venv-mmseg/bin/python mmseg_reference.py --depth 101 --bench 3

Outputs in --out: checkpoint.pth ({'meta', 'state_dict'}, loads with
torch.load(weights_only=True)), keys.txt (key, shape, dtype) and
reference.npz, all float32, NCHW unless named otherwise:
  input                 normalised tensor the backbone sees (mmseg's
                        data_preprocessor is bypassed)
  input_rgb_0_255_nhwc  the same as raw RGB (x*std+mean, mmseg's RGB
                        mean/std; Gaussian, so neither clipped nor rounded)
                        for ports that normalise inside the model
  logits                DAHead main (PAM+CAM) output, stride 8
  pam_logits, cam_logits, aux_logits   the other head outputs, stride 8
  seg_logits_fullres    encode_decode: logits resized bilinearly to the
                        input size with the heads' align_corners
  backbone_c1..c4       ResNet stage outputs (c1 stride 4, c2..c4 stride 8)
Weights depend on the architecture options and --seed only, not on the
input size, so fixtures at several sizes can share one checkpoint.
"""
import argparse
import atexit
import importlib.util
import os
import resource
import shutil
import sys
import tempfile
import time
import types
import warnings

# mmengine pretty-prints the config with yapf, which caches a grammar pickle
# in $XDG_CACHE_HOME; a throwaway one leaves nothing behind outside --out.
_CACHE = tempfile.mkdtemp(prefix='mmseg_reference_')
atexit.register(shutil.rmtree, _CACHE, True)
os.environ['XDG_CACHE_HOME'] = _CACHE

STUB_CALLS = []


def _stub_attr(name):
    if name.startswith('__'):  # keep import machinery and hasattr honest
        raise AttributeError(name)

    def missing(*args, **kwargs):
        STUB_CALLS.append(name)
        raise RuntimeError(f'mmcv._ext.{name} is a stub: mmcv-lite has no '
                           'compiled ops')
    return missing


if importlib.util.find_spec('mmcv._ext') is None:
    _ext = types.ModuleType('mmcv._ext')
    _ext.__getattr__ = _stub_attr
    sys.modules['mmcv._ext'] = _ext

import numpy as np  # noqa: E402
import torch  # noqa: E402
import mmcv  # noqa: E402
import mmengine  # noqa: E402
import mmseg  # noqa: E402
import mmseg.models  # noqa: E402,F401  (registers DANet's modules)
from mmengine.config import Config  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmseg.datasets import CityscapesDataset  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402

# Training-only chatter (loss deprecations, init_weights log) would bury the
# summary; nothing here trains.
warnings.filterwarnings('ignore', message='.*(build_loss|avg_non_ignore)')
MMLogger.get_instance('mmengine', log_level='WARNING')

CONFIG = os.path.join(os.path.dirname(mmseg.__file__), '.mim', 'configs',
                      '_base_', 'models', 'danet_r50-d8.py')


def class_meta(n):
    if n == 19:  # the base config's dataset: mmseg's own names and colours
        info = CityscapesDataset.METAINFO
        return tuple(info['classes']), [list(c) for c in info['palette']]
    # mmseg's own rule for datasets without a palette (seed 42, randint 255).
    palette = np.random.RandomState(42).randint(0, 255, size=(n, 3)).tolist()
    return tuple(f'class_{i}' for i in range(n)), palette


def build_config(a):
    cfg = Config.fromfile(CONFIG)
    bn = dict(type='BN', requires_grad=True)  # SyncBN needs a process group
    m = cfg.model
    m.pretrained = None  # the config points at an ImageNet download
    m.backbone.update(depth=a.depth, stem_channels=a.stem_channels,
                      base_channels=a.base_channels, norm_cfg=bn)
    # Bottleneck expansion is 4 and stage i has base*2**i planes, so stage 4
    # (decode head input) has base*8*4 channels and stage 3 (aux) base*4*4.
    m.decode_head.update(in_channels=a.base_channels * 8 * 4,
                         channels=a.head_channels, pam_channels=a.pam_channels,
                         num_classes=a.num_classes, norm_cfg=bn,
                         align_corners=a.align_corners)
    m.auxiliary_head.update(in_channels=a.base_channels * 4 * 4,
                            channels=a.aux_channels, num_classes=a.num_classes,
                            norm_cfg=bn, align_corners=a.align_corners)
    return cfg


def build_model(cfg):
    # BaseModel builds data_preprocessor via the root registry; the mmseg
    # scope lets it find SegDataPreProcessor.
    init_default_scope('mmseg')
    return MODELS.build(cfg.model)


@torch.no_grad()
def randomize(model, seed, gamma):
    """Random, non-trivial weights whose activations stay O(1).

    mmseg's init leaves BN at identity, zero-inits each bottleneck's bn3
    weight (residual branch outputs 0) and PAM/CAM gamma is 0 (attention
    skipped): a port could pass with those parts wrong.  So BN affine params
    are random, running stats are calibrated by one train-mode pass on a
    separate random batch (else activations explode or vanish over 50-101
    layers) and then perturbed, and PAM/CAM gamma is set.
    """
    g = torch.Generator().manual_seed(seed + 1)
    bns = [m for m in model.modules()
           if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
        m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one pass = exact batch stats
    model.train()
    # Fixed calibration size, so weights do not depend on --height/--width.
    feats = model.extract_feat(torch.randn(2, 3, 256, 512, generator=g))
    model.decode_head.forward(feats)
    model.auxiliary_head.forward(feats)
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum
        std = m.running_var.sqrt()
        m.running_mean.add_(torch.randn(m.running_mean.shape, generator=g) *
                            (0.1 * std + 0.01))
        m.running_var.mul_(torch.rand(m.running_var.shape, generator=g) *
                           0.7 + 0.7)
        m.num_batches_tracked.fill_(1000)
    model.decode_head.pam.gamma.scale.fill_(gamma)
    model.decode_head.cam.gamma.scale.fill_(gamma)
    model.eval()


@torch.no_grad()
def run(model, x):
    feats = model.extract_feat(x)
    logits, pam, cam = model.decode_head.forward(feats)
    shape = tuple(x.shape[-2:])
    metas = [dict(img_shape=shape, ori_shape=shape, pad_shape=shape)] * len(x)
    out = dict(logits=logits, pam_logits=pam, cam_logits=cam,
               aux_logits=model.auxiliary_head.forward(feats),
               seg_logits_fullres=model.encode_decode(x, metas))
    out.update({f'backbone_c{i + 1}': f for i, f in enumerate(feats)})
    return {k: v.numpy() for k, v in out.items()}


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stubs_called():  # the stub raises, but callers could swallow that
    return ','.join(sorted(set(STUB_CALLS))) or 'none'


def parse_args():
    p = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--depth', type=int, choices=(50, 101), default=50,
                   help='ResNetV1c depth')
    for name, default, text in [
            ('--num-classes', 19, 'classes of both heads'),
            ('--stem-channels', 64, 'ResNetV1c deep-stem width'),
            ('--base-channels', 64, 'ResNetV1c stage-1 planes'),
            ('--head-channels', 512, 'DAHead channels'),
            ('--pam-channels', 64, 'PAM query/key channels'),
            ('--aux-channels', 256, 'FCNHead channels'),
            ('--height', 256, 'random input height'),
            ('--width', 512, 'random input width'),
            ('--batch', 1, 'random input batch size'),
            ('--seed', 0, 'seeds weights and input'),
            ('--gamma', 0.5, 'value for the PAM and CAM gamma'),
            ('--out', 'mmseg_reference_out', 'output folder'),
            ('--bench', 0, 'if > 0, time this many forward passes after '
                           'one warm-up and write nothing')]:
        p.add_argument(name, type=type(default), default=default, help=text)
    p.add_argument('--align-corners', action='store_true',
                   help='on both heads, as in the 769x769 configs')
    p.add_argument('--legacy-serialization', action='store_true',
                   help='write checkpoint.pth in the pre-1.6 (non-zip) torch '
                        'format, as the 2020 mmseg files may be; also smaller '
                        'for checkpoints with many small tensors')
    return p.parse_args()


def main():
    a = parse_args()
    print(f'torch {torch.__version__} ({torch.get_num_threads()} threads), '
          f'mmcv {mmcv.__version__}, mmengine {mmengine.__version__}, '
          f'mmseg {mmseg.__version__}, numpy {np.__version__}')
    torch.manual_seed(a.seed)  # mmseg's own init_weights draws from it
    cfg = build_config(a)
    model = build_model(cfg)
    model.init_weights()
    randomize(model, a.seed, a.gamma)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    x = np.random.RandomState(a.seed + 2).randn(
        a.batch, 3, a.height, a.width).astype(np.float32)
    xt = torch.from_numpy(x)

    if a.bench:  # time the main-logits path: backbone + DAHead, no resize
        times = []
        with torch.no_grad():
            for _ in range(a.bench + 1):  # the first pass is the warm-up
                t0 = time.perf_counter()
                model.decode_head.forward(model.extract_feat(xt))
                times.append(time.perf_counter() - t0)
        runs = ' '.join(f'{t:.2f}s' for t in times[1:])
        print(f'bench r{a.depth} params={n_params:,} input={x.shape}: '
              f'warm-up {times[0]:.2f}s, runs {runs}, peak RSS '
              f'{peak_rss_mib():.0f} MiB, stub_calls={stubs_called()}')
        return

    ref = run(model, xt)
    if STUB_CALLS:
        sys.exit(f'mmcv._ext stubs were called ({stubs_called()}); '
                 'nothing written')
    # mean/std from mmseg's own config; float64 then one rounding, so that
    # re-normalising in float32 lands within an ulp or so of `input`.
    mean = np.array(cfg.model.data_preprocessor.mean)[:, None, None]
    std = np.array(cfg.model.data_preprocessor.std)[:, None, None]
    ref['input'] = x
    ref['input_rgb_0_255_nhwc'] = np.ascontiguousarray(
        (x * std + mean).astype(np.float32).transpose(0, 2, 3, 1))

    os.makedirs(a.out, exist_ok=True)
    classes, palette = class_meta(a.num_classes)
    meta = dict(
        CLASSES=classes, PALETTE=palette,
        dataset_meta=dict(classes=classes, palette=palette),
        mmseg_version=mmseg.__version__, mmcv_version=mmcv.__version__,
        # a TorchVersion object would make weights_only loading fail
        torch_version=str(torch.__version__),
        config=cfg.pretty_text, seed=a.seed,
        note=(f'random weights from mmseg_reference.py (seed {a.seed}): BN '
              'affine + calibrated running stats randomized, PAM/CAM gamma '
              f'{a.gamma}; BN instead of SyncBN; eval mode'))
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    ckpt = os.path.join(a.out, 'checkpoint.pth')
    torch.save({'meta': meta, 'state_dict': sd}, ckpt,
               _use_new_zipfile_serialization=not a.legacy_serialization)
    with open(os.path.join(a.out, 'keys.txt'), 'w') as f:
        for k, v in sd.items():
            dtype = str(v.dtype).replace('torch.', '')
            f.write(f'{k}\t{list(v.shape)}\t{dtype}\n')
    npz = os.path.join(a.out, 'reference.npz')
    np.savez(npz, **ref)

    # A fixture is only useful if the file alone reproduces the logits:
    # reload into a fresh, differently initialised model and compare.
    fresh = build_model(build_config(a))
    state = torch.load(ckpt, map_location='cpu', weights_only=True)
    fresh.load_state_dict(state['state_dict'], strict=True)
    fresh.eval()
    with torch.no_grad():
        again = fresh.decode_head.forward(fresh.extract_feat(xt))[0].numpy()
    reload_diff = float(np.abs(again - ref['logits']).max())
    back = ((ref['input_rgb_0_255_nhwc'] - mean.ravel().astype(np.float32)) /
            std.ravel().astype(np.float32))  # what a port would compute
    renorm_err = float(np.abs(back.transpose(0, 3, 1, 2) - x).max())

    lg = ref['logits']
    print(f'DANet r{a.depth}-d8 classes={a.num_classes} params={n_params:,} '
          f'input={x.shape} logits={lg.shape} logits_std={lg.std():.4f} '
          f'reload_diff={reload_diff:g} renorm_err={renorm_err:.1e} '
          f'stub_calls={stubs_called()} keys={len(sd)} '
          f'ckpt={os.path.getsize(ckpt) / 2**20:.2f}MiB '
          f'npz={os.path.getsize(npz) / 2**20:.2f}MiB '
          f'peak_rss={peak_rss_mib():.0f}MiB -> {a.out}')
    if reload_diff != 0.0:
        sys.exit('reloaded checkpoint does not reproduce the logits')


if __name__ == '__main__':
    main()

"""One measurement of mmsegmentation's own DANet, printed as one JSON line: the reference.

Runs in the mmseg virtual environment (tools/make_fixtures.sh makes .venv-mmseg); the
benchmark scripts call it beside keras_side.py in the same invocation:

    .venv-mmseg/bin/python benchmarks/mmseg_side.py forward --depth 50 --size 512 1024
    .venv-mmseg/bin/python benchmarks/mmseg_side.py train --size 512 512 --batch 2

`forward` times `EncoderDecoder.encode_decode` (backbone, DA head, resize to the input):
what `DANet.predict` computes. `train` times `model.loss` (four terms), backward and one
SGD step. On a GPU it runs there (`--precision float16` under torch.autocast); peak memory
is the GPU's peak allocation there and the process's peak RSS on a CPU.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import mmseg_reference  # noqa: E402  (mmcv._ext stand-in, mmseg's model registry)
import torch  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402


def build(depth, device):
    args = SimpleNamespace(
        depth=depth,
        num_classes=19,
        stem_channels=64,
        base_channels=64,
        head_channels=512,
        pam_channels=64,
        aux_channels=256,
        align_corners=False,
    )
    model = mmseg_reference.build_model(mmseg_reference.build_config(args))
    model.init_weights()
    return model.to(device)


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(function, runs, device, warmup=1):
    for _ in range(warmup):
        function()
    synchronize(device)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        synchronize(device)
        times.append(time.perf_counter() - started)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["forward", "train"])
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--size", type=int, nargs=2, default=(512, 1024))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2, help="steps before timing")
    parser.add_argument("--profile", action="store_true", help="train: one profiled step")
    parser.add_argument("--precision", default="float32", choices=["float32", "float16"])
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build(args.depth, device)
    inputs = torch.randn(args.batch, 3, *args.size, device=device)
    autocast = torch.autocast(device.type, dtype=torch.float16, enabled=args.precision == "float16")
    if args.what == "forward":
        model.eval()
        metas = [dict(img_shape=tuple(args.size), ori_shape=tuple(args.size))] * args.batch

        def step():
            with torch.no_grad(), autocast:
                model.encode_decode(inputs, metas)
    else:
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        samples = []
        for _ in range(args.batch):
            sample = SegDataSample()
            sample.set_metainfo(dict(img_shape=tuple(args.size), ori_shape=tuple(args.size)))
            labels = torch.randint(0, 19, (1, *args.size), device=device)
            sample.gt_sem_seg = PixelData(data=labels)
            samples.append(sample)

        # mmseg's configs use SyncBN; one process has no group, so plain BN (as mmseg's
        # single-GPU advice): the same arithmetic.
        def step():
            optimizer.zero_grad()
            with torch.profiler.record_function("forward + loss"), autocast:
                losses = model.loss(inputs, samples)
                total, _ = model.parse_losses(losses)
            with torch.profiler.record_function("backward"):
                total.backward()
            with torch.profiler.record_function("optimizer"):
                optimizer.step()

    started = time.perf_counter()
    step()  # also the first warm-up step
    synchronize(device)
    first = time.perf_counter() - started
    times = timed(step, args.runs, device, warmup=max(args.warmup - 1, 0))
    profile = None
    if args.profile and args.what == "train":
        import profiles

        marks = ("forward + loss", "backward", "optimizer")
        profile = profiles.torch_step_profile(step, marks=marks, autograd=False)
    if device.type == "cuda":
        memory, kind = torch.cuda.max_memory_allocated() / 2**30, "GPU"
    else:
        memory, kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "RSS"
    print(
        "RESULT "
        + json.dumps(
            {
                "backend": "mmseg",
                "first": first,
                "times": times,
                "best": min(times),
                "median": statistics.median(times),
                "profile": profile,
                "peak_gib": memory,
                "memory_kind": kind,
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "device": str(device),
            }
        )
    )


if __name__ == "__main__":
    main()

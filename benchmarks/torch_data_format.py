"""Channels-last against channels-first on Keras' PyTorch backend.

Keras' PyTorch backend runs a channels-last convolution by transposing and copying its
input; a channels-first model avoids that. This times a ResNet-V1c-50-D8 backbone built from
Keras layers at 512x1024 (batch 1, fp32, no gradients) three ways: Keras' Conv2D
channels-last, Keras' Conv2D channels-first, and keras_danet's Conv2D (channels-last, no
copies), each in a fresh process. Ratios are against Keras channels-last.

    python benchmarks/torch_data_format.py
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import append_report, machine_summary, ratio  # noqa: E402

VARIANTS = ("keras channels_last", "keras channels_first", "keras_danet channels_last")


def backbone(variant, size):
    import keras

    from keras_danet.layers import Conv2D as FastConv2D

    data_format = variant.split()[1]
    convolution = FastConv2D if variant.startswith("keras_danet") else keras.layers.Conv2D
    axis = 1 if data_format == "channels_first" else -1
    shape = (3, *size) if data_format == "channels_first" else (*size, 3)

    def conv(x, filters, kernel, strides=1, dilation=1):
        if strides > 1:
            x = keras.layers.ZeroPadding2D(kernel // 2, data_format=data_format)(x)
        x = convolution(
            filters,
            kernel,
            strides=strides,
            dilation_rate=dilation,
            padding="same" if strides == 1 else "valid",
            use_bias=False,
            data_format=data_format,
        )(x)
        return keras.layers.BatchNormalization(axis=axis)(x)

    inputs = keras.Input(shape)
    x = keras.layers.ReLU()(conv(inputs, 32, 3, 2))
    x = keras.layers.ReLU()(conv(x, 32, 3))
    x = keras.layers.ReLU()(conv(x, 64, 3))
    x = keras.layers.ZeroPadding2D(1, data_format=data_format)(x)
    x = keras.layers.MaxPooling2D(3, 2, data_format=data_format)(x)
    for stage, (blocks, stride, dilation) in enumerate(
        [(3, 1, 1), (4, 2, 1), (6, 1, 2), (3, 1, 4)]
    ):
        planes = 64 * 2**stage
        for block in range(blocks):
            shortcut = x
            if block == 0:
                shortcut = conv(x, planes * 4, 1, stride if stride > 1 else 1)
            y = keras.layers.ReLU()(conv(x, planes, 1))
            y = keras.layers.ReLU()(
                conv(
                    y,
                    planes,
                    3,
                    stride if block == 0 else 1,
                    max(dilation // 2, 1) if block == 0 else dilation,
                )
            )
            y = conv(y, planes * 4, 1)
            x = keras.layers.ReLU()(keras.layers.Add()([y, shortcut]))
    return keras.Model(inputs, x), shape


def run_variant(variant, size, runs):
    import numpy as np
    import torch

    model, shape = backbone(variant, size)
    images = np.random.default_rng(0).normal(size=(1, *shape)).astype("float32")
    times = []
    with torch.no_grad():
        for index in range(runs + 1):
            started = time.perf_counter()
            model(images)
            if index:  # the first call is the warm-up
                times.append(time.perf_counter() - started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print("RESULT " + json.dumps({"best": min(times), "peak_gib": peak}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=(512, 1024))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument(
        "--report", default=os.path.join(os.path.dirname(__file__), "..", "BENCHMARKS.md")
    )
    args = parser.parse_args()
    if args.variant:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
        return run_variant(args.variant, args.size, args.runs)
    results = {}
    for variant in VARIANTS:
        output = subprocess.run(
            [
                sys.executable,
                __file__,
                "--variant",
                variant,
                "--size",
                *map(str, args.size),
                "--runs",
                str(args.runs),
            ],
            capture_output=True,
            text=True,
            env=dict(os.environ, KERAS_BACKEND="torch"),
        ).stdout
        lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
        results[variant] = json.loads(lines[-1][7:]) if lines else {"error": output[-200:]}
    reference = results[VARIANTS[0]]
    table = [
        "| convolution | data format | seconds | vs Keras channels-last | peak GiB |",
        "|---|---|---:|---:|---:|",
    ]
    for variant, result in results.items():
        layer, data_format = variant.split()
        if "error" in result:
            table.append(f"| {layer} | {data_format} | failed | | |")
            continue
        table.append(
            f"| {layer} Conv2D | {data_format} | {result['best']:.2f} | "
            f"{ratio(result['best'], reference.get('best'))} | {result['peak_gib']:.2f} |"
        )
    print("\n".join(table))
    append_report(
        args.report,
        "Data format on the PyTorch backend (ResNet-V1c-50-D8 backbone)",
        f"`python benchmarks/torch_data_format.py`, {args.size[0]}x{args.size[1]}, best of "
        f"{args.runs}; {machine_summary()}",
        "\n".join(table),
    )


if __name__ == "__main__":
    main()

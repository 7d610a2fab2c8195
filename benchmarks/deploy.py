"""Exported DANet in ONNX Runtime and OpenVINO, float32 and int8, against mmseg and predict.

R50-D8 at 512x1024, batch 1 (19 classes, initial weights: the time does not depend on the
values), written by `keras_danet.export` and run on the CPU, each in a fresh process beside
mmseg's `encode_decode` (PyTorch) and our `predict` in the same run: the best of `--runs`
after the first call, the first call itself (loading and compiling included), the peak
memory, the file's size. int8 is calibrated on `--calibration` generated scenes. Then the
accuracy int8 costs, on trained weights: the bundled demo preset exported both ways,
calibrated on its training scenes, its mIoU on its 64 held-out scenes.

    python benchmarks/deploy.py
    python benchmarks/deploy.py --size 256 512 --runs 2 --no-accuracy   # a quick look
"""

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import append_report, machine_summary, measure, mmseg_python, ratio  # noqa: E402

# OpenVINO runs bf16 on CPUs with AVX512-BF16 unless asked for f32: both are shown.
RUNS = [
    ("float32.onnx", "ONNX Runtime", "float32", ""),
    ("float32.xml", "OpenVINO", "float32", "f32"),
    ("float32.xml", "OpenVINO", "its default (bf16 where the CPU has it)", ""),
    ("int8.onnx", "ONNX Runtime", "int8", ""),
    ("int8.xml", "OpenVINO", "int8", "f32"),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--size", type=int, nargs=2, default=(512, 1024))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calibration", type=int, default=8)
    parser.add_argument("--backend", default="tensorflow", help="whose predict to show")
    parser.add_argument("--no-accuracy", action="store_true")
    parser.add_argument(
        "--report", default=os.path.join(os.path.dirname(__file__), "..", "BENCHMARKS.md")
    )
    args = parser.parse_args()
    size = ["--size", *map(str, args.size)]
    runs = ["--runs", str(args.runs)]
    depth = ["--depth", str(args.depth)]

    reference = measure(["forward", *depth, *size, *runs], python=mmseg_python())
    ours = measure(["forward", *depth, *size, *runs, "--call", "predict"], backend=args.backend)
    best = reference.get("best")
    lines = [
        f"R{args.depth}-D8, {args.size[0]}x{args.size[1]}, batch 1, CPU: best of {args.runs} "
        "after the first call; ratios against mmseg's time in this run. Max diff: the largest "
        "logit difference from `predict` (TensorFlow) on the same input.",
        "",
        "| implementation | precision | seconds | vs mmseg | first call s | peak GiB | file MB "
        "| max diff | argmax agrees |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| mmseg 1.2.2, PyTorch | float32 | {_seconds(reference)} | 1.00 | | "
        f"{_gib(reference)} | | | |",
        f"| keras_danet predict, {args.backend} | float32 | {_seconds(ours)} | "
        f"{ratio(ours.get('best'), best)} | | {_gib(ours)} | | 0 | 1 |",
    ]
    with tempfile.TemporaryDirectory(prefix="deploy-benchmark-") as folder:
        exported = measure(
            ["export", "--folder", folder, *depth, *size, "--calibration", str(args.calibration)],
            backend="tensorflow",
            script="deploy_side.py",
        )
        if "error" in exported:
            lines.append(f"| export failed: {exported['error']} | | | | | | | | |")
        for name, runtime, precision, hint in RUNS if "error" not in exported else []:
            result = measure(
                ["run", "--path", os.path.join(folder, name), *runs, "--precision-hint", hint],
                script="deploy_side.py",
            )
            if "error" in result:
                lines.append(f"| {runtime} | {precision} | failed: {result['error']} | | | | | | |")
                continue
            lines.append(
                f"| {runtime} | {precision} | {result['best']:.2f} | "
                f"{ratio(result['best'], best)} | {result['first_call']:.2f} | "
                f"{result['peak_gib']:.2f} | {result['megabytes']:.0f} | "
                f"{result['max_diff']:.1e} | {result['argmax_agreement']:.4f} |"
            )
        if "error" not in exported:
            seconds = ", ".join(f"{n} {s:.0f} s" for n, s in exported["export_seconds"].items())
            lines += ["", f"Export (`keras_danet.export`, int8 with its calibration): {seconds}."]
    print("\n".join(lines), flush=True)

    if not args.no_accuracy:
        with tempfile.TemporaryDirectory(prefix="deploy-accuracy-") as folder:
            result = measure(
                ["accuracy", "--folder", folder, "--calibration", "64"],
                backend="tensorflow",
                script="deploy_side.py",
            )
        lines += ["", "int8's cost in accuracy: " + _accuracy(result)]
        print(lines[-1])

    append_report(
        args.report,
        "Deployment: exported files in ONNX Runtime and OpenVINO against mmseg",
        f"`python benchmarks/deploy.py {' '.join(sys.argv[1:])}`".replace(" `", "`"),
        f"{machine_summary()}\n\n" + "\n".join(lines),
    )


def _accuracy(result):
    if "error" in result:
        return f"failed: {result['error']}"
    miou = result["miou"]
    rows = [
        f"the bundled `danet_demo_shapes` (trained weights), int8 calibrated on "
        f"{result['calibration']} of its training scenes, mIoU on its {result['held_out']} "
        "held-out scenes:",
        "",
        "| runtime | float32 mIoU | int8 mIoU | change (points) |",
        "|---|---:|---:|---:|",
        f"| keras_danet predict (TensorFlow) | {miou['predict']:.2f} | | |",
    ]
    for format, runtime in (("onnx", "ONNX Runtime"), ("openvino", "OpenVINO")):
        float32, int8 = miou[f"{format} float32"], miou[f"{format} int8"]
        rows.append(f"| {runtime} | {float32:.2f} | {int8:.2f} | {int8 - float32:+.2f} |")
    return "\n".join(rows)


def _seconds(result):
    return f"{result['best']:.2f}" if "best" in result else f"failed: {result.get('error')}"


def _gib(result):
    return f"{result['peak_gib']:.2f}" if "peak_gib" in result else ""


if __name__ == "__main__":
    main()

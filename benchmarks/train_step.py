"""One training step (forward, four-term loss, backward, SGD update), each backend against
mmseg's training step, in one run.

R50-D8 by default, 512x512 crops, batch 2, fp32 (and bf16 / fp16 on a GPU): the best of
`--runs` steps after the first (which compiles), each backend in a fresh process.

    python benchmarks/train_step.py
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import append_report, gpu_summary, machine_summary, measure, mmseg_python, ratio  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--size", type=int, nargs=2, default=(512, 512))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument(
        "--report", default=os.path.join(os.path.dirname(__file__), "..", "BENCHMARKS.md")
    )
    args = parser.parse_args()
    gpu = gpu_summary()
    common = [
        "train",
        "--depth",
        str(args.depth),
        "--size",
        *map(str, args.size),
        "--batch",
        str(args.batch),
        "--runs",
        str(args.runs),
    ]
    lines = [
        f"R{args.depth}-D8, {args.size[0]}x{args.size[1]} crops, batch {args.batch}; best of "
        f"{args.runs} steps after the first; ratios against mmseg's step in this run.",
        "",
        "| precision | implementation | first step s | step s | vs mmseg | peak GiB | vs mmseg |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for ours_precision, mmseg_precision in [("float32", "float32")] + (
        [("bfloat16", "float16")] if gpu else []
    ):
        reference = measure(common + ["--precision", mmseg_precision], python=mmseg_python())
        best, memory = reference.get("best"), reference.get("peak_gib")
        lines.append(
            f"| {mmseg_precision} | mmseg 1.2.2 | {reference.get('first', float('nan')):.1f} | "
            f"{best or float('nan'):.2f} | 1.00 | {memory or float('nan'):.2f} | 1.00 |"
        )
        print(lines[-1], flush=True)
        for backend in args.backends:
            ours = measure(common + ["--precision", ours_precision], backend=backend)
            if "error" in ours:
                lines.append(f"| {ours_precision} | {backend} | failed: {ours['error']} | | | | |")
            else:
                lines.append(
                    f"| {ours_precision} | keras_danet, {backend} | {ours['first']:.1f} | "
                    f"{ours['best']:.2f} | {ratio(ours['best'], best)} | {ours['peak_gib']:.2f} | "
                    f"{ratio(ours['peak_gib'], memory)} |"
                )
            print(lines[-1], flush=True)
    append_report(
        args.report,
        "Training step against mmseg",
        f"`python benchmarks/train_step.py {' '.join(sys.argv[1:])}`".replace(" `", "`"),
        f"{machine_summary()}{'; GPU ' + gpu if gpu else '; no GPU'}\n\n" + "\n".join(lines),
    )


if __name__ == "__main__":
    main()

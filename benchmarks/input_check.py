"""The cost of checking every batch's labels and images on its way into `fit`, against a
training step, each backend in a fresh process.

`DANet.fit` with the checks and without them (the same generator handed over as Keras' own
adapter, which `fit` takes as it is) on the same generated batches, alternating, the best
of `--runs` epochs of `--steps` steps; and the NumPy check of one batch alone (labels with
a quarter of ignored pixels, the slower branch). R50-D8, 512x512 crops, batch 2 by default.

    python benchmarks/input_check.py
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import append_report, gpu_summary, machine_summary, measure  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--size", type=int, nargs=2, default=(512, 512))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument(
        "--report", default=os.path.join(os.path.dirname(__file__), "..", "BENCHMARKS.md")
    )
    args = parser.parse_args()
    gpu = gpu_summary()
    command = ["checks", "--depth", str(args.depth), "--size", *map(str, args.size)]
    command += ["--batch", str(args.batch), "--steps", str(args.steps), "--runs", str(args.runs)]
    lines = [
        f"R{args.depth}-D8, {args.size[0]}x{args.size[1]} crops, batch {args.batch}, a "
        f"generator of {args.steps} batches; best of {args.runs} epochs each way, alternating.",
        "",
        "| backend | step s, no checks (reference) | step s, checked | vs reference | "
        "one batch's check ms | check / step |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for backend in args.backends:
        result = measure(command, backend=backend)
        if "error" in result:
            lines.append(f"| {backend} | failed: {result['error']} | | | | |")
        else:
            step, checked, check = result["without"], result["best"], result["check"]
            lines.append(
                f"| {backend} | {step:.3f} | {checked:.3f} | {checked / step:.3f} | "
                f"{check * 1e3:.2f} | {check / step:.5f} |"
            )
        print(lines[-1], flush=True)
    append_report(
        args.report,
        "Input checks in fit against a training step",
        f"`python benchmarks/input_check.py {' '.join(sys.argv[1:])}`".replace(" `", "`"),
        f"{machine_summary()}{'; GPU ' + gpu if gpu else '; no GPU'}\n\n" + "\n".join(lines),
    )


if __name__ == "__main__":
    main()

"""One training step (forward, four-term loss, backward, SGD update), each backend against
mmseg's training step, in one run.

R50-D8 by default, 512x512 crops, batch 2, fp32 (and bf16 / fp16 on a GPU): the median of
`--runs` steps after `--warmup` steps (the first, which compiles, is reported on its own),
each implementation in a fresh process. `--size` and `--batch` make quick runs for
development (256x256 batch 2); `--profile` adds one profiled step of each implementation:
its 10 costliest operations and the split of the step where the backend lets us mark it
(benchmarks/profiles.py).

    python benchmarks/train_step.py                        # the headline, 512x512 batch 2
    python benchmarks/train_step.py --size 256 256 --profile
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from profiles import markdown  # noqa: E402
from report import append_report, gpu_summary, machine_summary, measure, mmseg_python, ratio  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--size", type=int, nargs=2, default=(512, 512))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--profile", action="store_true")
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
        "--warmup",
        str(args.warmup),
        *(["--profile"] if args.profile else []),
    ]
    lines = [
        f"R{args.depth}-D8, {args.size[0]}x{args.size[1]} crops, batch {args.batch}; median "
        f"of {args.runs} steps after {args.warmup} warm-up steps (the first compiles); "
        "ratios against mmseg's step in this run.",
        "",
        "| precision | implementation | first step s | median step s | vs mmseg | peak GiB "
        "| vs mmseg |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    profiles = []
    for ours_precision, mmseg_precision in [("float32", "float32")] + (
        [("bfloat16", "float16")] if gpu else []
    ):
        reference = measure(common + ["--precision", mmseg_precision], python=mmseg_python())
        best, memory = reference.get("median"), reference.get("peak_gib")
        if reference.get("profile"):
            profiles.append(markdown(f"mmseg 1.2.2, {mmseg_precision}", reference["profile"]))
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
                    f"{ours['median']:.2f} | {ratio(ours['median'], best)} | "
                    f"{ours['peak_gib']:.2f} | {ratio(ours['peak_gib'], memory)} |"
                )
                if ours.get("profile"):
                    name = f"keras_danet on {backend}, {ours_precision}"
                    profiles.append(markdown(name, ours["profile"]))
            print(lines[-1], flush=True)
    append_report(
        args.report,
        "Training step against mmseg",
        f"`python benchmarks/train_step.py {' '.join(sys.argv[1:])}`".replace(" `", "`"),
        f"{machine_summary()}{'; GPU ' + gpu if gpu else '; no GPU'}\n\n"
        + "\n".join(lines)
        + "".join(f"\n\n{profile}" for profile in profiles),
    )


if __name__ == "__main__":
    main()

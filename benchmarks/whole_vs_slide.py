"""Whole-image against sliding-window inference on a full Cityscapes frame: time and memory.

R50-D8 (and R101) with random weights on a 1024x2048 image, one process per measurement:
whole-image inference (PAM over all 32768 positions) and mmseg's 769x769 windows every 513
pixels (8 windows of 9409 positions each), through `keras_danet.inference.predict_logits`.

    python benchmarks/whole_vs_slide.py --backends jax
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import append_report, machine_summary, measure, ratio  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["jax"])
    parser.add_argument("--depths", type=int, nargs="+", default=[50, 101])
    parser.add_argument("--size", type=int, nargs=2, default=(1024, 2048))
    parser.add_argument(
        "--report", default=os.path.join(os.path.dirname(__file__), "..", "BENCHMARKS.md")
    )
    args = parser.parse_args()
    lines = [
        f"{args.size[0]}x{args.size[1]} image, logits at full size; one run after a warm-up.",
        "",
        "| model | backend | mode | seconds | vs whole | peak GiB | vs whole |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for depth in args.depths:
        for backend in args.backends:
            whole = None
            for mode in ("whole", "slide"):
                result = measure(
                    [
                        "segment",
                        "--depth",
                        str(depth),
                        "--size",
                        *map(str, args.size),
                        "--mode",
                        mode,
                        "--runs",
                        "1",
                    ],
                    backend=backend,
                )
                if "error" in result:
                    lines.append(
                        f"| R{depth} | {backend} | {mode} | failed: {result['error']} | | | |"
                    )
                    continue
                whole = result if mode == "whole" else whole
                lines.append(
                    f"| R{depth}-D8 | {backend} | {result['mode']} | {result['best']:.1f} | "
                    f"{ratio(result['best'], (whole or {}).get('best'))} | "
                    f"{result['peak_gib']:.2f} | "
                    f"{ratio(result['peak_gib'], (whole or {}).get('peak_gib'))} |"
                )
                print(lines[-1], flush=True)
    append_report(
        args.report,
        "Whole-image and sliding-window inference on a Cityscapes frame",
        f"`python benchmarks/whole_vs_slide.py {' '.join(sys.argv[1:])}`".replace(" `", "`"),
        f"{machine_summary()}\n\n" + "\n".join(lines),
    )


if __name__ == "__main__":
    main()

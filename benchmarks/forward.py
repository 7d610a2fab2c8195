"""Forward latency and peak memory of DANet, each backend against mmseg, in one run.

For R50-D8 and R101-D8 at 512x1024, batch 1, fp32: the best of `--runs` after a warm-up,
through `model.predict` (what users call) and `model.predict_on_batch`, each in a fresh
process, beside mmseg's `encode_decode` (backbone, head, resize) in its own venv. Then the
peak memory of whole-image inference on a 1024x2048 Cityscapes frame, ours against mmseg's,
and from the two sizes, the largest frame of that shape that fits in 16 GB.

On a GPU (nvidia-smi present) it adds bf16 (ours) and fp16 (mmseg) runs and frames per
second beside the mmseg model zoo's V100 figures (R50 2.66 fps, R101 1.99 fps).

    python benchmarks/forward.py                      # both depths, all three backends
    python benchmarks/forward.py --depths 50 --backends jax --no-memory
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import append_report, gpu_summary, machine_summary, measure, mmseg_python, ratio  # noqa: E402

V100_FPS = {50: 2.66, 101: 1.99}  # mmseg's model zoo, 512x1024, fp32


def fits_in(budget_gib, small, large, small_pixels, large_pixels, quadratic_gib_per_pixel2=0.0):
    """Pixels at which memory reaches the budget: linear through two measurements, plus a
    known quadratic term (mmseg's two float32 N x N attention matrices, N = pixels / 64)."""

    def linear_part(gib, pixels):
        return gib - quadratic_gib_per_pixel2 * pixels**2

    slope = (linear_part(large, large_pixels) - linear_part(small, small_pixels)) / (
        large_pixels - small_pixels
    )
    intercept = linear_part(small, small_pixels) - slope * small_pixels
    if quadratic_gib_per_pixel2 == 0:
        return (budget_gib - intercept) / slope
    a, b, c = quadratic_gib_per_pixel2, slope, intercept - budget_gib
    return (-b + (b * b - 4 * a * c) ** 0.5) / (2 * a)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[50, 101])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, nargs=2, default=(512, 1024))
    parser.add_argument("--memory-size", type=int, nargs=2, default=(1024, 2048))
    parser.add_argument("--no-memory", action="store_true", help="skip the 1024x2048 runs")
    parser.add_argument(
        "--report", default=os.path.join(os.path.dirname(__file__), "..", "BENCHMARKS.md")
    )
    args = parser.parse_args()
    python = mmseg_python()
    gpu = gpu_summary()
    precisions = [("float32", "float32")] + ([("bfloat16", "float16")] if gpu else [])
    size = ["--size", *map(str, args.size)]
    runs = ["--runs", str(args.runs)]

    lines = [
        f"{args.size[0]}x{args.size[1]}, batch 1, best of {args.runs} after a warm-up; "
        "ratios are ours / mmseg's, measured in this run.",
        "",
        "| model | precision | implementation | call | seconds | vs mmseg | fps | peak GiB "
        "| vs mmseg |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    small_memory = {}
    for depth in args.depths:
        for ours_precision, mmseg_precision in precisions:
            reference = measure(
                ["forward", "--depth", str(depth), *size, *runs, "--precision", mmseg_precision],
                python=python,
            )
            if "error" in reference:
                print(f"mmseg R{depth}: {reference['error']}")
            best, memory = reference.get("best"), reference.get("peak_gib")
            small_memory[("mmseg", depth)] = memory
            lines.append(
                f"| R{depth}-D8 | {mmseg_precision} | mmseg 1.2.2 | encode_decode | "
                f"{best or float('nan'):.2f} | 1.00 | {1 / best if best else 0:.2f} | "
                f"{memory or float('nan'):.2f} | 1.00 |"
            )
            for backend in args.backends:
                for call in ("predict", "predict_on_batch"):
                    ours = measure(
                        [
                            "forward",
                            "--depth",
                            str(depth),
                            *size,
                            *runs,
                            "--call",
                            call,
                            "--precision",
                            ours_precision,
                        ],
                        backend=backend,
                    )
                    if "error" in ours:
                        lines.append(
                            f"| R{depth}-D8 | {ours_precision} | {backend} | {call} "
                            f"| failed: {ours['error']} | | | | |"
                        )
                        continue
                    small_memory[(backend, depth)] = min(
                        ours["peak_gib"], small_memory.get((backend, depth), float("inf"))
                    )
                    lines.append(
                        f"| R{depth}-D8 | {ours_precision} | keras_danet, {backend} | {call} | "
                        f"{ours['best']:.2f} | {ratio(ours['best'], best)} | "
                        f"{1 / ours['best']:.2f} | {ours['peak_gib']:.2f} | "
                        f"{ratio(ours['peak_gib'], memory)} |"
                    )
            if gpu:
                lines.append(
                    f"| R{depth}-D8 | fp32 | mmseg model zoo, V100 | | | | "
                    f"{V100_FPS[depth]:.2f} | | |"
                )
        print("\n".join(lines))

    if not args.no_memory:
        big = ["--size", *map(str, args.memory_size)]
        small_pixels = args.size[0] * args.size[1]
        large_pixels = args.memory_size[0] * args.memory_size[1]
        lines += [
            "",
            f"Whole-image inference on a {args.memory_size[0]}x{args.memory_size[1]} frame "
            "(predict_on_batch; mmseg encode_decode), one process each; the 16 GB column is "
            f"extrapolated from the {args.size[0]}x{args.size[1]} and "
            f"{args.memory_size[0]}x{args.memory_size[1]} peaks (linear in pixels, plus "
            "mmseg's two float32 N x N attention matrices).",
            "",
            "| model | implementation | seconds | peak GiB | vs mmseg | largest 1:2 frame in "
            "16 GB |",
            "|---|---|---:|---:|---:|---|",
        ]
        for depth in args.depths:
            reference = measure(
                ["forward", "--depth", str(depth), *big, "--runs", "1"], python=python
            )
            rows = [("mmseg 1.2.2", reference, 8 * (1 / 64) ** 2 / 2**30, ("mmseg", depth))]
            for backend in args.backends:
                ours = measure(
                    [
                        "forward",
                        "--depth",
                        str(depth),
                        *big,
                        "--runs",
                        "1",
                        "--call",
                        "predict_on_batch",
                    ],
                    backend=backend,
                )
                rows.append((f"keras_danet, {backend}", ours, 0.0, (backend, depth)))
            for name, result, quadratic, key in rows:
                if "error" in result or small_memory.get(key) is None:
                    lines.append(f"| R{depth}-D8 | {name} | failed: {result.get('error')} | | | |")
                    continue
                pixels = fits_in(
                    16, small_memory[key], result["peak_gib"], small_pixels, large_pixels, quadratic
                )
                height = int((pixels / 2) ** 0.5)
                lines.append(
                    f"| R{depth}-D8 | {name} | {result['best']:.1f} | {result['peak_gib']:.2f} | "
                    f"{ratio(result['peak_gib'], reference.get('peak_gib'))} | "
                    f"about {height}x{2 * height} |"
                )
        print("\n".join(lines[-len(args.depths) * (len(args.backends) + 1) :]))

    append_report(
        args.report,
        "Forward pass and memory against mmseg",
        f"`python benchmarks/forward.py {' '.join(sys.argv[1:])}`".replace(" `", "`"),
        f"{machine_summary()}{'; GPU ' + gpu if gpu else '; no GPU'}\n\n" + "\n".join(lines),
    )


if __name__ == "__main__":
    main()

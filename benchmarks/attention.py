"""Position attention alone: time and peak memory against the number of positions N.

PAM on a (1, H, W, 512) feature map with 64-wide query and key, at N = H*W = 4096, 8192,
16384 and 32768 (a whole 1024x2048 Cityscapes frame at output stride 8), for each
implementation (naive: mmseg's N x N matrix; chunked: queries in blocks, keras_danet's
default; fused: keras.ops.dot_product_attention), one process per measurement. Ratios are
against "naive" at the same N and backend. Writes a PNG of memory and time against N.

    python benchmarks/attention.py --backends jax torch tensorflow
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import append_report, machine_summary, measure, ratio  # noqa: E402

IMPLEMENTATIONS = ("naive", "chunked", "fused")


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (memory_axis, time_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for (backend, how), points in sorted(results.items()):
        points = [(n, r) for n, r in sorted(points.items()) if "error" not in r]
        if not points:
            continue
        style = {"naive": "o-", "chunked": "s-", "fused": "^--"}[how]
        label = f"{backend} {how}"
        memory_axis.plot(
            [n for n, _ in points], [r["peak_gib"] for _, r in points], style, label=label
        )
        time_axis.plot([n for n, _ in points], [r["best"] for _, r in points], style, label=label)
    for axis, title in ((memory_axis, "peak memory (GiB)"), (time_axis, "seconds")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("positions N = H x W")
        axis.set_title(f"PositionAttention: {title}")
        axis.grid(True, alpha=0.3)
    time_axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def _memory_gib():
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["jax", "torch", "tensorflow"])
    parser.add_argument("--positions", type=int, nargs="+", default=[4096, 8192, 16384, 32768])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--plot",
        default=os.path.join(os.path.dirname(__file__), "..", "docs", "attention_memory.png"),
    )
    parser.add_argument(
        "--report", default=os.path.join(os.path.dirname(__file__), "..", "BENCHMARKS.md")
    )
    args = parser.parse_args()
    results = {}
    lines = [
        "| backend | N | implementation | seconds | vs naive | peak GiB | vs naive |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for backend in args.backends:
        for positions in args.positions:
            naive = None
            for how in IMPLEMENTATIONS:
                # A quadratic implementation needs about 4x the memory at twice N: skip it
                # where that would exceed this machine's memory (and summon the OOM killer).
                previous = results.get((backend, how), {}).get(positions // 2, {})
                needed = 4 * previous.get("peak_gib", 0)
                if needed > _memory_gib():
                    lines.append(
                        f"| {backend} | {positions} | {how} | skipped: would need about "
                        f"{needed:.0f} GiB, the machine has {_memory_gib():.0f} | | | |"
                    )
                    print(lines[-1], flush=True)
                    continue
                result = measure(
                    [
                        "attention",
                        "--positions",
                        str(positions),
                        "--how",
                        how,
                        "--runs",
                        str(args.runs),
                    ],
                    backend=backend,
                )
                results.setdefault((backend, how), {})[positions] = result
                if "error" in result:
                    lines.append(
                        f"| {backend} | {positions} | {how} | failed: "
                        f"{result['error'][:80]} | | | |"
                    )
                    continue
                naive = result if how == "naive" else naive
                lines.append(
                    f"| {backend} | {positions} | {how} | {result['best']:.3f} | "
                    f"{ratio(result['best'], (naive or {}).get('best'))} | "
                    f"{result['peak_gib']:.2f} | "
                    f"{ratio(result['peak_gib'], (naive or {}).get('peak_gib'))} |"
                )
                print(lines[-1], flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.plot)), exist_ok=True)
    plot(results, args.plot)
    append_report(
        args.report,
        "Position attention against N",
        f"`python benchmarks/attention.py {' '.join(sys.argv[1:])}`".replace(" `", "`"),
        f"{machine_summary()}\n\nPeak memory is the whole process's (framework included). "
        f"Plot: {os.path.relpath(args.plot, os.path.dirname(os.path.abspath(args.report)))}"
        "\n\n" + "\n".join(lines),
    )


if __name__ == "__main__":
    main()

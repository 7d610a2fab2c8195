"""Shared by the benchmark scripts: what machine this is, and appending to BENCHMARKS.md."""

import datetime
import os
import platform


def machine_summary():
    """CPU model and count, memory, and the versions that matter to the figures."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as file:
            names = [line.split(":", 1)[1].strip() for line in file if "model name" in line]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as file:
            kib = int(file.readline().split()[1])
        memory = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    versions = []
    for module in ("keras", "jax", "tensorflow", "torch", "cv2"):
        try:
            versions.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            continue
    return f"{cpu} x{os.cpu_count()}{memory}; {', '.join(versions)}"


def gpu_summary():
    """The GPU's name, or None: `nvidia-smi` where it exists."""
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        return None
    result = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
        capture_output=True,
        text=True,
    )
    return result.stdout.strip() or None


def append_report(path, title, command, body):
    """Appends a dated section to BENCHMARKS.md (the newest results stay at the end)."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = f"\n## {title} ({stamp})\n\n{command}\n\n{body}\n"
    exists = os.path.exists(path)
    with open(path, "a") as file:
        if not exists:
            file.write(
                "# Benchmarks\n\nEach section is one run of a script in `benchmarks/` (see "
                "benchmarks/README.md), appended by it; the newest is last.\n"
            )
        file.write(section)

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


def measure(command, backend=None, python=None, timeout=3600, script=None):
    """Runs `keras_side.py` (with KERAS_BACKEND=`backend`), `mmseg_side.py` (with the mmseg
    venv's `python`) or another `script` in a fresh process; returns its RESULT dict, or
    {"error": ...}."""
    import json
    import subprocess
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    script = script or ("mmseg_side.py" if python else "keras_side.py")
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if backend:
        environment["KERAS_BACKEND"] = backend
    result = subprocess.run(
        [python or sys.executable, os.path.join(here, script), *command],
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
    )
    for line in result.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
    return {"error": " | ".join(tail)[-300:]}


def mmseg_python():
    """The mmseg venv's interpreter (tools/make_fixtures.sh creates .venv-mmseg)."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    path = os.environ.get("MMSEG_PYTHON") or os.path.join(root, ".venv-mmseg", "bin", "python")
    if not os.path.exists(path):
        raise SystemExit(
            f"No mmseg interpreter at {path}: run `bash tools/make_fixtures.sh` once (it "
            "creates .venv-mmseg), or set MMSEG_PYTHON."
        )
    return path


def ratio(value, reference):
    if reference is None or value is None or "error" in (value, reference):
        return "–"
    return f"{value / reference:.2f}"

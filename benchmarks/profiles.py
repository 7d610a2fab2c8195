"""One profiled training step: the operations that take the time, and how the step splits.

Used by keras_side.py and mmseg_side.py with `train --profile`; each returns plain data for
the RESULT line:

- `top_ops`: the 10 operations with the most self time, `[name, seconds, share of all the
  operations' time]`.
  PyTorch (mmseg and the torch backend): `torch.profiler`, by operator. JAX: the step's XLA
  trace (`jax.profiler`, written as a Perfetto trace and read back), by HLO instruction
  with its number dropped (`fusion.12` -> `fusion`). TensorFlow writes its profile as an
  XPlane file that only the separate `xprof` tool reads, so it has no table here.
- `phases`: seconds per part of the step where the backend lets us mark them.
"""

import collections
import glob
import gzip
import json
import os
import re
import tempfile
import time


def _top(totals, count=10):
    """The `count` largest of `{operation: seconds}`, each with its share of all operations'
    time (which can exceed the step's wall time where operations run on several threads)."""
    everything = sum(totals.values()) or 1.0
    ranked = sorted(totals.items(), key=lambda item: -item[1])[:count]
    return [[name, round(seconds, 4), round(seconds / everything, 3)] for name, seconds in ranked]


def torch_step_profile(step, marks=(), autograd=True):
    """Profiles one call of `step` with torch.profiler (CPU). `marks` are the names of
    `torch.profiler.record_function` ranges the step opens; their totals are the phases,
    and with `autograd`, the backward pass (autograd's engine, unmarked) is one more."""
    import torch

    activities = [torch.profiler.ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profile:
        started = time.perf_counter()
        step()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
    totals, phases = {}, collections.Counter()
    for event in profile.key_averages():
        name = event.key
        if name in marks:
            phases[name] += event.cpu_time_total / 1e6
            continue
        if name.startswith("autograd::engine::evaluate_function"):
            # Each backward node's range; its children are the backward kernels.
            if autograd:
                phases["backward"] += event.cpu_time_total / 1e6
            continue
        if name.startswith(("ProfilerStep", "## ")):
            continue
        totals[name] = totals.get(name, 0.0) + event.self_cpu_time_total / 1e6
    phases = {name: round(value, 3) for name, value in phases.items()}
    return {"step": round(seconds, 3), "top_ops": _top(totals), "phases": phases}


# XLA names instructions `kind.N` (`fusion.12`, `convolution.3`); the kind is what we add up.
_NUMBERED = re.compile(r"[._]\d+$")


def jax_step_profile(step):
    """Profiles one call of `step` (which must block until its results are ready) with
    jax.profiler, and adds up the XLA instructions' time by kind."""
    import jax

    with tempfile.TemporaryDirectory(prefix="jax-profile-") as folder:
        with jax.profiler.trace(folder, create_perfetto_trace=True):
            started = time.perf_counter()
            step()
            seconds = time.perf_counter() - started
        traces = glob.glob(os.path.join(folder, "**", "*.trace.json.gz"), recursive=True)
        if not traces:
            return {"step": round(seconds, 3), "error": "jax.profiler wrote no Perfetto trace"}
        with gzip.open(traces[0], "rt") as file:
            trace = json.load(file)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    totals = {}
    for event in events:
        # One event per executed XLA instruction, on whichever thread ran it; the runtime's
        # own ranges (ThunkExecutor, PjRt's) carry no hlo_op and hold the instructions.
        hlo = event.get("args", {}).get("hlo_op")
        if event.get("ph") != "X" or "dur" not in event or not hlo:
            continue
        kind = _NUMBERED.sub("", str(hlo))
        totals[kind] = totals.get(kind, 0.0) + event["dur"] / 1e6
    return {"step": round(seconds, 3), "top_ops": _top(totals), "phases": {}}


def markdown(name, profile):
    """A section of BENCHMARKS.md for one implementation's profile."""
    lines = [f"**{name}**: one step {profile.get('step', float('nan')):.2f} s"]
    phases = profile.get("phases") or {}
    if phases:
        shares = ", ".join(
            f"{phase} {seconds:.2f} s ({seconds / profile['step']:.0%})"
            for phase, seconds in phases.items()
        )
        lines[0] += f"; {shares}"
    if profile.get("error"):
        lines.append(f"no table: {profile['error']}")
    if profile.get("top_ops"):
        lines += ["", "| operation | self s | share of op time |", "|---|---:|---:|"]
        lines += [
            f"| `{op}` | {seconds:.3f} | {share:.1%} |" for op, seconds, share in profile["top_ops"]
        ]
    return "\n".join(lines)

"""One measurement of keras_danet in this process, printed as one JSON line.

Run by the benchmark scripts, one process per measurement (KERAS_BACKEND set by them), so
that each peak memory figure is that measurement's alone:

    KERAS_BACKEND=jax python benchmarks/keras_side.py forward --depth 50 --size 512 1024
    KERAS_BACKEND=torch python benchmarks/keras_side.py train --size 512 512 --batch 2
    KERAS_BACKEND=jax python benchmarks/keras_side.py attention --positions 16384 --how chunked
    KERAS_BACKEND=jax python benchmarks/keras_side.py segment --size 1024 2048 --mode slide

Peak memory is the process's peak RSS on a CPU, and the device's peak allocation on a GPU.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

import numpy as np


def peak_memory_gib():
    """Peak device memory on a GPU where the backend reports it, else the peak RSS."""
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "torch":
            import torch

            if torch.cuda.is_available():
                return torch.cuda.max_memory_allocated() / 2**30, "GPU"
        elif backend == "jax":
            import jax

            device = jax.devices()[0]
            if device.platform == "gpu":
                return device.memory_stats()["peak_bytes_in_use"] / 2**30, "GPU"
        elif backend == "tensorflow":
            import tensorflow as tf

            if tf.config.list_physical_devices("GPU"):
                return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**30, "GPU"
    except (RuntimeError, KeyError, ValueError, AttributeError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "RSS"


def timed(function, runs, warmup=1):
    for _ in range(warmup):
        function()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def _model(args):
    import keras

    import keras_danet

    if args.precision == "bfloat16":
        keras.config.set_dtype_policy("mixed_bfloat16")
    elif args.precision == "float16":
        keras.config.set_dtype_policy("mixed_float16")
    return keras_danet.DANet(num_classes=19, depth=args.depth)


def forward(args):
    model = _model(args)
    images = np.random.default_rng(0).uniform(0, 255, (args.batch, *args.size, 3))
    images = images.astype("float32")
    calls = {
        "predict": lambda: model.predict(images, verbose=0),
        "predict_on_batch": lambda: model.predict_on_batch(images),
    }
    started = time.perf_counter()
    calls[args.call]()
    first = time.perf_counter() - started
    return {"first": first, "times": timed(calls[args.call], args.runs, warmup=0)}


def train(args):
    model = _model(args)
    model.compile(max_iterations=1000)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (args.batch, *args.size, 3)).astype("float32")
    labels = rng.integers(0, 19, (args.batch, *args.size)).astype("uint8")

    def step():
        model.train_on_batch(images, labels)

    started = time.perf_counter()
    step()  # the first step compiles: timed on its own, and a warm-up step
    first = time.perf_counter() - started
    result = {"first": first, "times": timed(step, args.runs, warmup=max(args.warmup - 1, 0))}
    if args.profile:
        result["profile"] = _train_profile(model, step, images)
    return result


def _train_profile(model, step, images):
    """One profiled step (benchmarks/profiles.py) and, on every backend, the forward pass's
    share: a compiled inference-mode forward (`predict_on_batch`), timed alone."""
    import keras
    import profiles

    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        # Marks around Keras' own calls, on this object only: the loss and the update.
        def marked(name, function):
            def call(*args, **kwargs):
                with torch.profiler.record_function(name):
                    return function(*args, **kwargs)

            return call

        object.__setattr__(model, "compute_loss", marked("loss", model.compute_loss))
        optimizer = model.optimizer
        object.__setattr__(optimizer, "apply", marked("optimizer", optimizer.apply))
        profile = profiles.torch_step_profile(step, marks=("loss", "optimizer"))
    elif backend == "jax":
        profile = profiles.jax_step_profile(step)
    else:
        started = time.perf_counter()
        step()
        profile = {
            "step": round(time.perf_counter() - started, 3),
            "error": "TensorFlow's profile is an XPlane file only the xprof tool reads",
            "phases": {},
        }
    forward = timed(lambda: model.predict_on_batch(images), 2, warmup=1)
    profile["phases"]["forward (inference mode, timed alone)"] = round(
        statistics.median(forward), 3
    )
    return profile


def checks(args):
    """DANet.fit on `--steps` generated batches with the input checks and without (the same
    generator handed over as Keras' own adapter, which fit takes as it is), alternating, and
    the check of one batch alone."""
    from keras.src.trainers.data_adapters import get_data_adapter

    from keras_danet.training.input_check import check_batch

    model = _model(args)
    model.compile(max_iterations=1000)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (args.batch, *args.size, 3)).astype("float32")
    labels = rng.integers(0, 19, (args.batch, *args.size)).astype("uint8")
    labels[:, : args.size[0] // 4] = 255  # ignored pixels: the check's slower branch

    def batches():
        for _ in range(args.steps):
            yield images, labels

    def checked():
        model.fit(batches(), steps_per_epoch=args.steps, verbose=0)

    def unchecked():
        model.fit(get_data_adapter(batches()), steps_per_epoch=args.steps, verbose=0)

    checked()  # compiles
    with_checks, without = [], []
    for _ in range(args.runs):
        with_checks += timed(checked, 1, warmup=0)
        without += timed(unchecked, 1, warmup=0)
    alone = timed(lambda: check_batch((images, labels), 19, "benchmark"), 20)
    return {
        "times": [t / args.steps for t in with_checks],
        "without": min(without) / args.steps,
        "check": min(alone),
    }


def attention(args):
    import keras

    from keras_danet import PositionAttention

    layer = PositionAttention(64, implementation=args.how)
    side = int(np.sqrt(args.positions))
    shape = (1, side, args.positions // side, 512)
    inputs = np.random.default_rng(0).normal(size=shape).astype("float32")
    layer.build(shape)
    layer.gamma.assign(0.5)
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        variables = [v.value for v in layer.trainable_variables]

        @jax.jit
        def run(x):
            return layer.stateless_call(variables, [], x)[0]

        call = lambda: run(inputs).block_until_ready()  # noqa: E731
    elif backend == "tensorflow":
        import tensorflow as tf

        run = tf.function(layer, jit_compile=False)
        call = lambda: run(inputs).numpy()  # noqa: E731
    else:
        import torch

        def call():
            with torch.no_grad():
                keras.ops.convert_to_numpy(layer(inputs))

    times = timed(call, args.runs)
    return {"times": times, "positions": shape[1] * shape[2]}


def segment(args):
    import keras_danet
    from keras_danet.inference import predict_logits
    from keras_danet.presets import TestSettings

    model = keras_danet.DANet(num_classes=19, depth=args.depth)
    image = np.random.default_rng(0).uniform(0, 255, (*args.size, 3)).astype("float32")
    if args.mode == "slide":
        settings = TestSettings("slide", args.crop, args.stride)
    else:
        settings = TestSettings("whole")
    times = timed(lambda: predict_logits(model, image, settings), args.runs)
    return {"times": times, "mode": settings.describe()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["forward", "train", "attention", "segment", "checks"])
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--size", type=int, nargs=2, default=(512, 1024))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2, help="train: steps before timing")
    parser.add_argument("--profile", action="store_true", help="train: one profiled step")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--call", default="predict", choices=["predict", "predict_on_batch"])
    parser.add_argument(
        "--precision", default="float32", choices=["float32", "bfloat16", "float16"]
    )
    parser.add_argument("--positions", type=int, default=4096)
    parser.add_argument("--how", default="chunked", choices=["naive", "chunked", "fused"])
    parser.add_argument("--mode", default="whole", choices=["whole", "slide"])
    parser.add_argument("--crop", type=int, nargs=2, default=(769, 769))
    parser.add_argument("--stride", type=int, nargs=2, default=(513, 513))
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import keras

    result = {
        "forward": forward,
        "train": train,
        "attention": attention,
        "segment": segment,
        "checks": checks,
    }[args.what](args)
    memory, kind = peak_memory_gib()
    result.update(
        backend=keras.backend.backend(),
        best=min(result["times"]),
        median=statistics.median(result["times"]),
        peak_gib=memory,
        memory_kind=kind,
    )
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()

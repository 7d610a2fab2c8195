"""One step of the deployment benchmark in this process, printed as one JSON line.

Run by benchmarks/deploy.py, each step in a fresh process, so that a runtime's peak memory
is its own:

    KERAS_BACKEND=tensorflow python benchmarks/deploy_side.py export --folder out --depth 50
    python benchmarks/deploy_side.py run --path out/float32.onnx --size 512 1024
    KERAS_BACKEND=tensorflow python benchmarks/deploy_side.py accuracy --folder out

`export` writes R50-D8 (19 classes, initial weights) through `keras_danet.export` as
float32 and int8 ONNX and OpenVINO files, with `predict`'s logits on one input to compare
against. `run` loads one file in its runtime and times it. `accuracy` exports the bundled
demo preset (trained weights) as float32 and int8 files and measures the mIoU of each on
the preset's held-out generated scenes.
"""

import argparse
import json
import os
import resource
import time

import numpy as np

FILES = {
    ("onnx", "float32"): "float32.onnx",
    ("onnx", "int8"): "int8.onnx",
    ("openvino", "float32"): "float32.xml",
    ("openvino", "int8"): "int8.xml",
}
TRAIN_SEED, HELD_OUT_SEED, SCENE_SIZE = 1, 12345, (96, 144)  # weights/train_demo_preset.py


def _peak_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _export_all(model, folder, calibration):
    import keras_danet

    seconds = {}
    for (format, precision), name in FILES.items():
        started = time.perf_counter()
        keras_danet.export(
            model,
            os.path.join(folder, name),
            format,
            labels=True,
            int8=precision == "int8",
            calibration=calibration if precision == "int8" else None,
        )
        seconds[name] = time.perf_counter() - started
        print(f"{name}: {seconds[name]:.0f} s", flush=True)
    return seconds


def export(args):
    import keras_danet
    from keras_danet.data import synthetic_scenes

    os.makedirs(args.folder, exist_ok=True)
    model = keras_danet.DANet(num_classes=19, depth=args.depth)
    images = np.random.default_rng(0).uniform(0, 255, (1, *args.size, 3)).astype("float32")
    np.save(os.path.join(args.folder, "images.npy"), images)
    np.save(os.path.join(args.folder, "logits.npy"), model.predict(images, verbose=0))
    calibration = synthetic_scenes(args.calibration, *args.size, seed=TRAIN_SEED)[0]
    return {"export_seconds": _export_all(model, args.folder, calibration)}


def _runner(path, precision_hint):
    if path.endswith(".onnx"):
        import onnxruntime

        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        names = ["logits", "labels"]
        return lambda images: dict(zip(names, session.run(names, {"images": images}), strict=True))
    import openvino

    config = {"INFERENCE_PRECISION_HINT": precision_hint} if precision_hint else {}
    compiled = openvino.Core().compile_model(path, "CPU", config)
    ports = {name: compiled.output(name) for name in ("logits", "labels")}

    def run(images):
        results = compiled(images)
        return {name: results[port] for name, port in ports.items()}

    return run


def run(args):
    folder = os.path.dirname(args.path)
    images = np.load(os.path.join(folder, "images.npy"))
    expected = np.load(os.path.join(folder, "logits.npy"))
    started = time.perf_counter()
    infer = _runner(args.path, args.precision_hint)
    logits = infer(images)["logits"]
    first_call = time.perf_counter() - started
    times = []
    for _ in range(args.runs):
        started = time.perf_counter()
        infer(images)
        times.append(time.perf_counter() - started)
    # Not keras_danet.deployment.written_paths: importing Keras would count in the peak.
    files = [args.path] + ([os.path.splitext(args.path)[0] + ".bin"] * args.path.endswith(".xml"))
    size = sum(os.path.getsize(path) for path in files)
    return {
        "first_call": first_call,
        "best": min(times),
        "times": times,
        "peak_gib": _peak_gib(),
        "megabytes": size / 2**20,
        "max_diff": float(np.abs(logits - expected).max()),
        "argmax_agreement": float(np.mean(logits.argmax(-1) == expected.argmax(-1))),
    }


def accuracy(args):
    import keras_danet
    from keras_danet.data import synthetic_scenes
    from keras_danet.metrics import SegmentationMetrics

    os.makedirs(args.folder, exist_ok=True)
    model = keras_danet.DANet.from_preset("danet_demo_shapes", progress=False)
    calibration = synthetic_scenes(args.calibration, *SCENE_SIZE, seed=TRAIN_SEED)[0]
    images, labels = synthetic_scenes(args.count, *SCENE_SIZE, seed=HELD_OUT_SEED)
    _export_all(model, args.folder, calibration)

    def miou(predict):
        metrics = SegmentationMetrics(model.num_classes)
        for start in range(0, len(images), 8):
            batch = images[start : start + 8].astype("float32")
            metrics.update(predict(batch), labels[start : start + 8])
        return metrics.result().miou * 100

    result = {"predict": miou(lambda batch: model.predict(batch, verbose=0).argmax(-1))}
    for (format, precision), name in FILES.items():
        infer = _runner(os.path.join(args.folder, name), "f32")
        result[f"{format} {precision}"] = miou(lambda batch, infer=infer: infer(batch)["labels"])
    return {"miou": result, "calibration": args.calibration, "held_out": args.count}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["export", "run", "accuracy"])
    parser.add_argument("--folder")
    parser.add_argument("--path")
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--size", type=int, nargs=2, default=(512, 1024))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calibration", type=int, default=8, help="images to calibrate int8 on")
    parser.add_argument("--count", type=int, default=64, help="held-out scenes for accuracy")
    parser.add_argument("--precision-hint", default="f32", help="OpenVINO's; '' for its default")
    args = parser.parse_args()
    result = {"export": export, "run": run, "accuracy": accuracy}[args.what](args)
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()

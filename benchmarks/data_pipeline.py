"""Throughput of the augmented training pipeline, and the engine that runs it.

Writes Cityscapes-sized (2048x1024) PNG scenes in Cityscapes' layout, then measures how many
augmented 512x1024 crops per second (mmseg's Cityscapes recipe: RandomResize 0.5-2.0 of
2048x1024, RandomCrop, RandomFlip, PhotoMetricDistortion, pad) each engine delivers:

- the work itself on one thread (decode PNGs, augment), the reference of the ratios;
- `keras_danet.data.cityscapes(...)`, a `keras.utils.PyDataset`, through the Keras adapter
  `fit` uses, with 1 and 2 worker threads;
- the same work as a `grain` dataset (threads, and worker processes), which Keras' `fit`
  also accepts.

With `--train-step`, it also times one DANet R50-D8 training step (forward, backward, SGD)
on a batch of two 512x1024 crops, to set the pipeline's rate beside the step it feeds.

    python benchmarks/data_pipeline.py [--train-step]
"""

import argparse
import os
import platform
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import append_report, machine_summary  # noqa: E402


def write_cityscapes_like(root, count, seed=0):
    """`count` 1024x2048 scenes as leftImg8bit / gtFine labelTrainIds PNGs."""
    import cv2

    from keras_danet.data import synthetic_scenes

    images, labels = synthetic_scenes(count, 256, 512, seed)
    rng = np.random.default_rng(seed)
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        big = cv2.resize(image, (2048, 1024), interpolation=cv2.INTER_LINEAR)
        big = np.clip(big + rng.normal(0, 6, big.shape), 0, 255).astype(np.uint8)
        big_label = cv2.resize(label, (2048, 1024), interpolation=cv2.INTER_NEAREST)
        big_label = np.where(big_label == 255, 255, big_label * 4)  # spread over 0-18
        stem = f"city_{index:06d}_000019"
        for folder, name, array in [
            ("leftImg8bit", f"{stem}_leftImg8bit.png", big[..., ::-1]),
            ("gtFine", f"{stem}_gtFine_labelTrainIds.png", big_label),
        ]:
            path = os.path.join(root, folder, "train", "city", name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            cv2.imwrite(path, array)


def rate(iterator, batches, batch_size):
    next(iterator)  # start-up (threads, processes) is not throughput
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - started)


def keras_iterator(dataset):
    from keras.src.trainers.data_adapters import get_data_adapter

    adapter = get_data_adapter(dataset)

    def batches():
        while True:
            adapter.on_epoch_begin()
            yield from adapter.get_numpy_iterator()
            adapter.on_epoch_end()

    return batches()


def grain_iterator(dataset, threads=0, processes=0):
    import grain

    def load(index, rng):
        image, label = dataset.sample(int(index))
        return dataset.augmentation(image, label, rng)

    pipeline = (
        grain.MapDataset.range(len(dataset.files))
        .repeat()
        .random_map(load, seed=dataset.seed)
        .batch(dataset.batch_size)
    )
    options = grain.ReadOptions(num_threads=max(threads, 1), prefetch_buffer_size=4)
    pipeline = pipeline.to_iter_dataset(options)
    if processes:
        from absl import flags

        flags.FLAGS.mark_as_parsed()  # grain's worker processes read absl flags
        pipeline = pipeline.mp_prefetch(grain.MultiprocessingOptions(num_workers=processes))
    return iter(pipeline)


def train_step_seconds(batch_size):
    import keras

    import keras_danet

    model = keras_danet.DANet(num_classes=19, depth=50)
    model.compile(max_iterations=1000)
    images = np.random.default_rng(0).uniform(0, 255, (batch_size, 512, 1024, 3))
    labels = np.random.default_rng(1).integers(0, 19, (batch_size, 512, 1024))
    model.train_on_batch(images.astype("float32"), labels.astype("uint8"))  # compiles
    started = time.perf_counter()
    model.train_on_batch(images.astype("float32"), labels.astype("uint8"))
    return time.perf_counter() - started, keras.backend.backend()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64, help="scenes to write")
    parser.add_argument(
        "--batches", type=int, default=24, help="batches timed per engine (within one epoch)"
    )
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--train-step", action="store_true", help="also time a training step")
    parser.add_argument("--no-grain", action="store_true", help="skip the grain engines")
    parser.add_argument(
        "--report", default=os.path.join(os.path.dirname(__file__), "..", "BENCHMARKS.md")
    )
    args = parser.parse_args()

    import keras_danet

    rows = []
    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        write_cityscapes_like(root, args.images)
        print(f"wrote {args.images} 1024x2048 scenes in {time.perf_counter() - started:.1f} s")
        base = keras_danet.data.cityscapes(root, "train", batch_size=args.batch_size, workers=1)

        def single_thread():
            index = 0
            while True:
                samples = [base.sample(i % len(base.files)) for i in range(index, index + 2)]
                rng = np.random.default_rng(index)
                yield [base.augmentation(image, label, rng) for image, label in samples]
                index += 2

        reference = rate(single_thread(), args.batches, args.batch_size)
        rows.append(("one thread, no engine (reference)", reference))
        for workers in (1, 2):
            dataset = base.with_options(workers=workers)
            rows.append(
                (
                    f"PyDataset, {workers} worker thread(s)",
                    rate(keras_iterator(dataset), args.batches, args.batch_size),
                )
            )
        if not args.no_grain:
            rows.append(
                (
                    "grain, 2 threads",
                    rate(grain_iterator(base, threads=2), args.batches, args.batch_size),
                )
            )
            rows.append(
                (
                    "grain, 2 processes",
                    rate(grain_iterator(base, processes=2), args.batches, args.batch_size),
                )
            )

    lines = [
        "| engine | crops / s | vs one thread |",
        "|---|---:|---:|",
        *[f"| {name} | {value:.2f} | {value / reference:.2f} |" for name, value in rows],
    ]
    if args.train_step:
        seconds, backend = train_step_seconds(args.batch_size)
        lines.append(
            f"\nOne R50-D8 training step on {args.batch_size} 512x1024 crops ({backend}, this "
            f"CPU): {seconds:.1f} s, i.e. {args.batch_size / seconds:.3f} crops / s consumed."
        )
    table = "\n".join(lines)
    print(table)
    append_report(
        args.report,
        "Data pipeline: augmented 512x1024 Cityscapes crops",
        f"`python benchmarks/data_pipeline.py --images {args.images} --batches {args.batches}"
        f"{' --train-step' if args.train_step else ''}`, {machine_summary()}, "
        f"Python {platform.python_version()}",
        table,
    )


if __name__ == "__main__":
    main()

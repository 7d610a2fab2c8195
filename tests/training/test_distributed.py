"""Training on several devices: JAX's `keras.distribution.DataParallel` and TensorFlow's
`MirroredStrategy` on two virtual CPU devices in a child process, two JAX processes, and
two PyTorch processes under `torchrun` (Gloo on CPU), must give the single-device step on
the same global batch, which for BatchNorm means statistics over the global batch, as
mmseg's SyncBN.
"""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_danet
from tests.presets.conftest import REPOSITORY, run_python

COMMON = """
import json
import keras, numpy as np
import keras_danet
from tests.helpers import attentive_tiny_model

rng = np.random.default_rng(0)
images = rng.uniform(0, 255, size=(4, 32, 40, 3)).astype("float32")
labels = rng.integers(0, 4, size=(4, 32, 40)).astype("uint8")
labels[:, :, :4] = 255


def danet(**kwargs):
    keras.utils.set_random_seed(0)
    return attentive_tiny_model(4, dropout=0.0, **kwargs)


single = danet()
start = single.get_weights()
# TensorFlow runs the reference step eagerly: tracing it costs 20 s, for the same numbers.
single.compile(max_iterations=10, run_eagerly=keras.backend.backend() == "tensorflow")
expected = single.train_on_batch(images, labels, return_dict=True)
expected_weights = single.get_weights()


def relative_weight_difference(model):
    return max(
        float(np.abs(a - b).max() / (np.abs(b).max() + 1e-12))
        for a, b in zip(model.get_weights(), expected_weights)
    )
"""

JAX_DATA_PARALLEL = """
import jax
devices = jax.devices()
assert len(devices) == 2, devices
keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
model = danet()
model.set_weights(start)
model.compile(max_iterations=10)
got = model.train_on_batch(images, labels, return_dict=True)
weights = relative_weight_difference(model)
replicas_equal = all(
    len(v.value.addressable_shards) == 2
    and np.array_equal(v.value.addressable_shards[0].data, v.value.addressable_shards[1].data)
    for v in model.weights
)
history = model.fit(images, labels, batch_size=4, epochs=1, verbose=0)
print(json.dumps({
    "single": expected["loss"], "parallel": got["loss"],
    "weights": weights,
    "replicas_equal": replicas_equal, "fit_loss": history.history["loss"][0],
}))
"""


# Two logical CPU devices, set before TensorFlow starts its runtime.
TWO_TENSORFLOW_CPUS = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""

TENSORFLOW_MIRRORED = """
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    model = danet(synchronized_batch_norm=True)
    model.set_weights(start)
    model.compile(max_iterations=10)
# One step of fit on the global batch of 4: two images on each replica.
history = model.fit(images, labels, batch_size=4, epochs=1, shuffle=False, verbose=0)
print(json.dumps({
    "single": expected["loss"], "parallel": history.history["loss"][0],
    "weights": relative_weight_difference(model),
}))
"""


def _run(script, prelude="", **environment):
    result = run_python(prelude + COMMON + script, **environment)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="keras.distribution is JAX's")
def test_jax_data_parallel_equals_one_device_on_the_global_batch():
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2"
    got = _run(JAX_DATA_PARALLEL, XLA_FLAGS=flags.strip())
    assert got["replicas_equal"]
    # BatchNorm sees the global batch: the sharded step is the single-device step
    # (measured: the loss equal to 1e-7, weights within 7.0e-6 of their scale).
    assert got["parallel"] == pytest.approx(got["single"], rel=1e-5)
    assert got["weights"] < 1e-4
    assert got["fit_loss"] == got["fit_loss"]  # fit() ran and gave a number


# In every process of both scripts, with a model that has trained (`agreeing`): a callback
# stops the last process alone after its first step, and rank 0 cannot save a preset (a
# config.json that keras_danet did not write is in the folder). Both times every process
# must do the same (stop, raise), or its next collective call would pair with another and
# hang.
AGREEMENT = """
class StopTheLastProcess(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if keras_danet.distributed.process_index() == processes - 1:
            self.model.stop_training = True

before = agreeing.training_run()["steps"]
agreeing.fit(images, labels, epochs=1, batch_size=2 // processes, shuffle=False, verbose=0,
             callbacks=[StopTheLastProcess()])
stopped_steps = agreeing.training_run()["steps"] - before
os.makedirs(f"{folder}/foreign", exist_ok=True)
with open(f"{folder}/foreign/config.json", "w") as file:
    file.write("{}")
try:
    agreeing.save_to_preset(f"{folder}/foreign")
    refused = None
except Exception as error:
    refused = f"{type(error).__name__}: {error}"
# One image for two processes: every process refuses it (none waits for the other's part).
try:
    agreeing.evaluate(images[:1], labels[:1], verbose=0)
    too_few = None
except ValueError as error:
    too_few = str(error)
"""


def _assert_every_process_agreed(logs):
    """The checks of AGREEMENT: one step in every process, the save refused in each, and one
    evaluation image for two processes refused in each."""
    assert [entry["stopped_steps"] for entry in logs] == [1, 1, 1]
    alone, first, other = (entry["refused"] for entry in logs)
    assert "config.json" in alone and first == alone.replace("/one/", "/two/")
    assert other == f"RuntimeError: Process 0, which writes for all processes, failed: {first}"
    refusal = "1 evaluation images for 2 processes: every process needs at least one"
    assert logs[0]["too_few"] is None
    assert all(entry["too_few"].startswith(refusal) for entry in logs[1:])


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.distribute is TF's")
def test_tensorflow_mirrored_strategy_equals_one_device_on_the_global_batch():
    got = _run(TENSORFLOW_MIRRORED, prelude=TWO_TENSORFLOW_CPUS)
    # Synchronized BatchNorm sees the global batch: the step is the single-device step
    # (measured: the same loss to the last digit, weights within 5.4e-6 of their scale).
    assert got["parallel"] == pytest.approx(got["single"], rel=1e-5)
    assert got["weights"] < 1e-4


# Run in each of 2 processes (as on 2 hosts: JAX's coordinator on localhost, Gloo for the
# CPU collectives), and alone as the reference with rank -1.
JAX_PROCESSES_SCRIPT = """
import json, os, sys
folder, rank, port = sys.argv[1], int(sys.argv[2]), sys.argv[3]
import jax, keras, numpy as np
if rank >= 0:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    keras.distribution.initialize(f"localhost:{port}", num_processes=2, process_id=rank)
    keras.distribution.set_distribution(keras.distribution.DataParallel())
import keras_danet
from tests.helpers import attentive_tiny_model

processes = keras_danet.distributed.process_count()
rng = np.random.default_rng(0)
images = rng.uniform(0, 255, size=(4, 32, 40, 3)).astype("float32")
labels = rng.integers(0, 4, size=(4, 32, 40)).astype("uint8")
labels[:, :, :4] = 255
keras.utils.set_random_seed(0)
model = attentive_tiny_model(4, dropout=0.0, synchronized_batch_norm=True)
model.compile(max_iterations=10)
history = model.fit(
    images, labels, batch_size=2 // processes, epochs=1, shuffle=False, verbose=0,
    validation_data=(images, labels),
)
index = keras_danet.distributed.process_index()
np.savez(f"{folder}/weights{index}.npz", *model.get_weights())
logs = {name: values[-1] for name, values in history.history.items()}
steps = model.training_run()["steps"]
agreeing = model
{AGREEMENT}
with open(f"{folder}/logs{index}.json", "w") as file:
    json.dump({"logs": logs, "processes": processes, "steps": steps,
               "stopped_steps": stopped_steps, "refused": refused, "too_few": too_few}, file)
"""


def _free_port():
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="keras.distribution is JAX's")
def test_jax_two_processes_equal_one_process_on_the_global_batch(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(JAX_PROCESSES_SCRIPT.replace("{AGREEMENT}", AGREEMENT))
    environment = dict(os.environ, PYTHONPATH=REPOSITORY, KERAS_BACKEND="jax")
    for folder in ("one", "two"):
        os.makedirs(tmp_path / folder)
    command = [sys.executable, str(script)]
    single = subprocess.run(
        [*command, str(tmp_path / "one"), "-1", "0"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPOSITORY,
        timeout=600,
    )
    assert single.returncode == 0, single.stderr[-4000:]
    port = str(_free_port())
    workers = [
        subprocess.Popen(
            [*command, str(tmp_path / "two"), str(rank), port],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=environment,
            cwd=REPOSITORY,
        )
        for rank in (0, 1)
    ]
    for worker in workers:
        output = worker.communicate(timeout=600)[0]
        assert worker.returncode == 0, output[-4000:]

    expected = np.load(tmp_path / "one" / "weights0.npz")
    logs = [
        json.loads((tmp_path / folder / name).read_text())
        for folder, name in (("one", "logs0.json"), ("two", "logs0.json"), ("two", "logs1.json"))
    ]
    assert [entry["processes"] for entry in logs] == [1, 2, 2]
    assert [entry["steps"] for entry in logs] == [2, 2, 2]
    _assert_every_process_agreed(logs)
    for rank in (0, 1):
        got = np.load(tmp_path / "two" / f"weights{rank}.npz")
        assert len(got.files) == len(expected.files) > 40
        for name in expected.files:
            scale = np.abs(expected[name]).max() + 1e-12
            assert np.abs(got[name] - expected[name]).max() / scale < 1e-4, name
    for entry in logs[1:]:
        for name, value in logs[0]["logs"].items():
            assert entry["logs"][name] == pytest.approx(value, rel=1e-5, abs=1e-6), name


def test_synchronized_batch_norm_option_reaches_every_batch_norm():
    from keras_danet import DANet
    from keras_danet.layers import TorchBatchNormalization
    from tests.conftest import TINY

    model = DANet(num_classes=4, synchronized_batch_norm=True, **TINY)
    layers = [
        layer
        for part in (model, model.backbone, model.training_heads)
        for layer in part.layers
        if isinstance(layer, TorchBatchNormalization)
    ]
    assert len(layers) == 24  # the stem's 3, 3 and a shortcut's in each of 4 blocks, 5 in heads
    for layer in layers:
        # Keras' own flag on TensorFlow (tf.distribute); JAX's DataParallel needs none.
        assert layer.synchronized == (keras.backend.backend() == "tensorflow")
        assert layer.get_config()["synchronized"] is True
    assert DANet.from_config(model.get_config()).synchronized_batch_norm


# Run by torchrun in each of 2 processes, and alone as the reference. Each process starts
# from other weights (fit gives every one rank 0's), trains on its half of each batch of 2
# and validates on its half of the images.
TORCHRUN_SCRIPT = """
import json, os, sys
import keras, numpy as np, torch
import keras_danet
from keras_danet.layers import TorchBatchNormalization
from tests.conftest import TINY
from tests.helpers import attentive_tiny_model

folder = sys.argv[1]
rank = keras_danet.distributed.process_index()
processes = keras_danet.distributed.process_count()
rng = np.random.default_rng(0)
images = rng.uniform(0, 255, size=(4, 32, 40, 3)).astype("float32")
labels = rng.integers(0, 4, size=(4, 32, 40)).astype("uint8")
labels[:, :, :4] = 255
keras.utils.set_random_seed(rank)
model = attentive_tiny_model(4, dropout=0.0, synchronized_batch_norm=True)
model.compile(max_iterations=10)
backup = f"{folder}/backup"
part = dict(batch_size=2 // processes, shuffle=False, verbose=0)
history = model.fit(
    images, labels, epochs=1, validation_data=(images, labels), **part,
    callbacks=[keras_danet.training.BackupAndRestore(backup, delete_checkpoint=False)],
)
keras_danet.distributed.barrier()  # rank 0 may still be writing
backed_up = sorted(os.listdir(backup))
evaluated = model.evaluate(images, labels, batch_size=1, verbose=0, return_dict=True)
# The same fit to 2 epochs resumes after the first from the backup, in every process.
model.fit(images, labels, epochs=2, **part,
          callbacks=[keras_danet.training.BackupAndRestore(backup)])
# Rank 0 writes the preset; every process returns when it is whole.
saved = model.save_to_preset(f"{folder}/preset")
preset_files = sorted(os.listdir(saved))
# Plain BatchNorm: every process ends each step with rank 0's running statistics.
plain = keras_danet.DANet(num_classes=4, dropout=0.0, **TINY)
plain.compile(max_iterations=10)
plain.fit(images, labels, epochs=1, **part)
np.savez(f"{folder}/plain{rank}.npz", *[v.numpy() for v in plain.non_trainable_variables])
agreeing = plain
{AGREEMENT}
# The layer alone on this process's part of a global batch, with a gradient.
values = np.random.default_rng(1).normal(2.0, 3.0, size=(4, 6, 5, 3)).astype("float32")
weights = np.random.default_rng(2).normal(size=values.shape).astype("float32")
layer = TorchBatchNormalization(synchronized=True)
part = torch.tensor(values[rank::processes], requires_grad=True)
outputs = layer(part, training=True)
(outputs * torch.tensor(weights[rank::processes])).sum().backward()
np.savez(
    f"{folder}/weights{rank}.npz", *model.get_weights(), bn_outputs=outputs.detach().numpy(),
    bn_gradient=part.grad.numpy(), bn_mean=layer.moving_mean.numpy(),
    bn_variance=layer.moving_variance.numpy(),
)
logs = {name: values[-1] for name, values in history.history.items()}
with open(f"{folder}/logs{rank}.json", "w") as file:
    json.dump({
        "logs": logs, "evaluated": evaluated, "backed_up": backed_up, "processes": processes,
        "steps": model.training_run()["steps"], "left": os.path.exists(backup),
        "preset_files": preset_files, "stopped_steps": stopped_steps, "refused": refused,
        "too_few": too_few,
    }, file)
"""


def _run_torch_script(command, folder):
    environment = dict(os.environ, PYTHONPATH=REPOSITORY, KERAS_BACKEND="torch")
    os.makedirs(folder)
    result = subprocess.run(
        [*command, str(folder)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPOSITORY,
        timeout=600,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]


def _interleaved(parts):
    """The global batch from each process's part (rank r holds images r, r + 2, ...)."""
    whole = np.empty((sum(len(part) for part in parts), *parts[0].shape[1:]), parts[0].dtype)
    for rank, part in enumerate(parts):
        whole[rank :: len(parts)] = part
    return whole


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="torchrun drives PyTorch")
def test_torchrun_two_processes_equal_one_process_on_the_global_batch(tmp_path):
    import torch

    script = tmp_path / "train.py"
    script.write_text(TORCHRUN_SCRIPT.replace("{AGREEMENT}", AGREEMENT))
    _run_torch_script([sys.executable, str(script)], tmp_path / "one")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    _run_torch_script([*torchrun, "--nproc_per_node=2", str(script)], tmp_path / "two")

    single = np.load(tmp_path / "one" / "weights0.npz")
    ranks = [np.load(tmp_path / "two" / f"weights{rank}.npz") for rank in (0, 1)]
    logs = [
        json.loads((tmp_path / folder / name).read_text())
        for folder, name in (("one", "logs0.json"), ("two", "logs0.json"), ("two", "logs1.json"))
    ]
    assert [entry["processes"] for entry in logs] == [1, 2, 2]
    # 2 steps, then 2 more in the resumed second epoch; the backup written once, by rank 0,
    # and deleted at the end.
    assert [entry["steps"] for entry in logs] == [4, 4, 4]
    _assert_every_process_agreed(logs)
    assert [entry["backed_up"] for entry in logs] == [
        ["latest.weights.h5", "training_metadata.json"]
    ] * 3
    assert [entry["left"] for entry in logs] == [False] * 3
    assert [entry["preset_files"] for entry in logs] == [
        ["config.json", "metadata.json", "model.weights.h5"]
    ] * 3
    weights = [name for name in single.files if name.startswith("arr_")]
    assert len(weights) > 40  # every weight, BatchNorm's moving statistics included
    plain = [np.load(tmp_path / "two" / f"plain{rank}.npz") for rank in (0, 1)]
    assert len(plain[0].files) > 40
    for name in plain[0].files:
        np.testing.assert_array_equal(plain[0][name], plain[1][name])
    # Every process holds the same weights, bit for bit: the same averaged gradients.
    for name in weights:
        np.testing.assert_array_equal(ranks[0][name], ranks[1][name])
    # ... and those of one process on the global batch, to float32 rounding (measured:
    # 4e-6 of each weight's largest value; the sums run in another order).
    for name in weights:
        scale = np.abs(single[name]).max() + 1e-12
        assert np.abs(ranks[0][name] - single[name]).max() / scale < 1e-4, name
    # The logs count every process: training loss, loss terms, mIoU, validation.
    assert set(logs[0]["logs"]) >= {"loss", "main_loss", "mean_iou", "val_loss", "val_mean_iou"}
    for entry in logs[1:]:
        for key in ("logs", "evaluated"):
            for name, value in logs[0][key].items():
                assert entry[key][name] == pytest.approx(value, rel=1e-5, abs=1e-6), name

    # Synchronized BatchNorm alone: PyTorch's BatchNorm2d on the global batch (what
    # SyncBatchNorm computes; SyncBatchNorm itself refuses CPU tensors).
    values = np.random.default_rng(1).normal(2.0, 3.0, size=(4, 6, 5, 3)).astype("float32")
    weights = np.random.default_rng(2).normal(size=values.shape).astype("float32")
    reference = torch.nn.BatchNorm2d(3)
    inputs = torch.tensor(values.transpose(0, 3, 1, 2), requires_grad=True)
    outputs = reference(inputs)
    (outputs * torch.tensor(weights.transpose(0, 3, 1, 2))).sum().backward()
    expected = {
        "bn_outputs": outputs.detach().numpy().transpose(0, 2, 3, 1),
        "bn_gradient": inputs.grad.numpy().transpose(0, 2, 3, 1),
    }
    for name, value in expected.items():
        np.testing.assert_allclose(_interleaved([part[name] for part in ranks]), value, atol=2e-6)
    for rank in ranks:
        np.testing.assert_allclose(rank["bn_mean"], reference.running_mean.numpy(), atol=1e-6)
        np.testing.assert_allclose(rank["bn_variance"], reference.running_var.numpy(), atol=1e-6)


@pytest.mark.skipif(keras.backend.backend() == "torch", reason="the PyTorch backend runs it")
def test_torchrun_on_another_backend_is_refused(monkeypatch):
    # Each process would train a model of its own: an error names the fix.
    for name, value in dict(
        RANK="1", WORLD_SIZE="2", LOCAL_RANK="1", MASTER_ADDR="localhost", MASTER_PORT="29500"
    ).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(RuntimeError, match="KERAS_BACKEND=torch"):
        keras_danet.DANet(num_classes=4)
    with pytest.raises(RuntimeError, match="torchrun drives PyTorch only"):
        keras_danet.distributed.process_count()

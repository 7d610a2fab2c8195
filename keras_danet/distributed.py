"""Training in several processes: PyTorch under `torchrun`, JAX across hosts.

`torchrun --nproc_per_node=N train.py` runs the same script N times; each process reads
its rank from the environment. Keras has no multi-device training on PyTorch, so keras-danet
does what PyTorch's DistributedDataParallel does, inside `fit`: every process starts from
rank 0's weights, reads its own shard of the data, and averages the gradients with the
others before each update; BatchNorm layers built with `synchronized_batch_norm=True`
compute their statistics over all processes (as `torch.nn.SyncBatchNorm`); the metrics of
each epoch are summed over all processes; only rank 0 writes backups and presets and shows
a progress bar. The process group starts by itself in a process that `torchrun` started,
when a model is built or any function here is called (NCCL on GPUs, each process on the
GPU of its local rank; Gloo on CPUs).

On JAX, after `keras.distribution.initialize()` and a `DataParallel` distribution on each
host, Keras makes each step one global batch over all hosts; `fit` gives each host its
shard of the data, and rank 0 alone writes, as on PyTorch.

Example:
>>> keras_danet.distributed.process_count(), keras_danet.distributed.is_main_process()
(1, True)
"""

import contextlib
import os

import keras
import numpy as np

# What torchrun sets in each process it starts.
_TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def _launched_by_torchrun():
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and all(
        name in os.environ for name in _TORCHRUN_VARIABLES
    )


def start():
    """Joins the process group that `torchrun` set up, if this process is one of several.

    Called by every model's constructor, so a script needs no line of its own. On GPUs each
    process takes the GPU of its `LOCAL_RANK` before any weight is made. Does nothing in a
    single process. Raises where several processes cannot train together: torchrun with a
    backend other than PyTorch (each process would train a model of its own).
    """
    if not _launched_by_torchrun():
        return
    backend = keras.backend.backend()
    if backend != "torch":
        raise RuntimeError(
            f"This process is one of {os.environ['WORLD_SIZE']} that torchrun started, but "
            f"Keras runs on {backend}: torchrun drives PyTorch only, and each process would "
            "train a model of its own. Set KERAS_BACKEND=torch, or on JAX start the processes "
            "with keras.distribution.initialize() (README, Several devices)."
        )
    import torch
    import torch.distributed

    if torch.distributed.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def _torch_processes():
    """torchrun's world size on PyTorch once the group has started, else 1."""
    start()
    if keras.backend.backend() != "torch":
        return 1
    import torch.distributed

    if not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return 1
    return torch.distributed.get_world_size()


def process_count():
    """How many processes train together: torchrun's world size on PyTorch, JAX's process
    count after `keras.distribution.initialize()` on JAX, else 1."""
    start()
    if keras.backend.backend() == "jax":
        import jax

        return jax.process_count()
    return _torch_processes()


def process_index():
    """This process's rank among `process_count()` (0 in a single process)."""
    if process_count() == 1:
        return 0
    if keras.backend.backend() == "jax":
        import jax

        return jax.process_index()
    import torch.distributed

    return torch.distributed.get_rank()


def is_main_process():
    """Whether this process writes files and shows progress (rank 0, or the only one)."""
    return process_index() == 0


def barrier():
    """Waits until every process has come here (nothing in a single process)."""
    if process_count() == 1:
        return
    if keras.backend.backend() == "jax":
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("keras_danet.distributed.barrier")
        return
    import torch.distributed

    torch.distributed.barrier()


def any_process(flag):
    """Whether `flag` is true in any process. Every process must call it, at the same point."""
    if process_count() == 1:
        return bool(flag)
    if keras.backend.backend() == "jax":
        from jax.experimental import multihost_utils

        flags = multihost_utils.process_allgather(np.array([int(bool(flag))], np.int32))
        return bool(np.max(flags))
    import torch
    import torch.distributed

    value = torch.tensor([int(bool(flag))], device=_collective_device())
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item())


def run_on_main_process(function, *args, **kwargs):
    """Runs `function` in rank 0 alone (it writes for all processes), and returns what it
    returns there (None elsewhere). Every process waits until it has ended; if it raised,
    rank 0 raises its error and every other process a `RuntimeError` quoting it, so that no
    process goes on alone to a collective the others never reach. Every process must call
    it, at the same point. In a single process, `function(*args, **kwargs)`."""
    if process_count() == 1:
        return function(*args, **kwargs)
    result = failure = None
    if is_main_process():
        try:
            result = function(*args, **kwargs)
        except BaseException as error:  # every process raises, below (Ctrl-C included)
            failure = error
    message = _text_of_main_process(
        "" if failure is None else f"{type(failure).__name__}: {failure}"
    )
    if failure is not None:
        raise failure
    if message:
        raise RuntimeError(f"Process 0, which writes for all processes, failed: {message}")
    return result


# The longest error text that rank 0 sends the others (a fixed size: one collective call).
_MESSAGE_BYTES = 2048


def _text_of_main_process(text):
    """Rank 0's `text` in every process (a collective: every process must call it)."""
    encoded = text.encode("utf-8")[:_MESSAGE_BYTES].ljust(_MESSAGE_BYTES, b"\0")
    values = np.frombuffer(encoded, np.uint8).astype(np.int32)
    if keras.backend.backend() == "jax":
        from jax.experimental import multihost_utils

        values = np.asarray(multihost_utils.broadcast_one_to_all(values))
    else:
        import torch
        import torch.distributed

        tensor = torch.tensor(values, device=_collective_device())
        torch.distributed.broadcast(tensor, src=0)
        values = tensor.cpu().numpy()
    return bytes(values.astype(np.uint8)).rstrip(b"\0").decode("utf-8", errors="replace")


def _collective_device():
    """Where PyTorch's process group takes tensors: the process's GPU with NCCL, else CPU."""
    import torch
    import torch.distributed

    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


class AgreedStop(keras.callbacks.Callback):
    """After each training step and each epoch, training stops in every process as soon as
    it stops in one: a callback that sets `model.stop_training` in one process only (a
    `TerminateOnNaN` without `raise_error` on its own batch's loss, a time limit) would
    otherwise leave the others waiting for it in their next step's gradient all-reduce.
    `fit` adds it last, after every other callback has decided; one collective call on one
    number per step (on JAX, a gather, which also waits for the step to end).

    (A process that raises, as `fit`'s default `TerminateOnNaN` does on its own batch's
    loss, ends; torchrun then stops the others.)"""

    def on_train_batch_end(self, batch, logs=None):
        self._agree()

    def on_epoch_end(self, epoch, logs=None):
        self._agree()

    def _agree(self):
        # `_model`, not `model`: on JAX, `model` copies the whole training state back into
        # the variables first, which Keras' trainer avoids between steps.
        self._model.stop_training = any_process(self._model.stop_training)


@contextlib.contextmanager
def data_sharded_here(sharded=True):
    """While open (with `sharded`), Keras' multi-process JAX distribution takes each
    process's batches as that process's part, as keras-danet sharded them, instead of
    asking for a tf.data pipeline to shard itself."""
    distribution = keras.distribution.distribution() if keras.backend.backend() == "jax" else None
    if not sharded or distribution is None or not distribution.auto_shard_dataset:
        yield
        return
    distribution.auto_shard_dataset = False
    try:
        yield
    finally:
        distribution.auto_shard_dataset = True


def shard_indices(count, process=None, processes=None, *, even=True):
    """The indices of `count` examples that `process` of `processes` reads: every
    `processes`-th one from its rank, as PyTorch's `DistributedSampler`. With `even`, the
    list is first wrapped around to a multiple of `processes`, so that every process takes
    the same number of steps (the gradients are averaged at each one)."""
    process = process_index() if process is None else process
    processes = process_count() if processes is None else processes
    indices = np.arange(count)
    if even and count % processes:
        indices = np.resize(indices, -(-count // processes) * processes)
    return indices[process::processes]


def broadcast_variables(variables, flat=False):
    """Gives every process rank 0's values of `variables`, as DistributedDataParallel does
    with the weights when it wraps a model. (PyTorch; on JAX, Keras seeds every process
    alike in `keras.distribution.initialize()`.)"""
    if _torch_processes() == 1:
        return
    import torch
    import torch.distributed

    variables = list(variables)
    with torch.no_grad():
        if not flat:
            for variable in variables:
                torch.distributed.broadcast(variable.value.data, src=0)
            return
        # Small variables (BatchNorm's statistics): one broadcast for all of them.
        values = [variable.value.data for variable in variables]
        if not values:
            return
        joined = _joined(values)
        torch.distributed.broadcast(joined, src=0)
        for value, part in zip(values, _split(joined, values), strict=True):
            value.copy_(part)


def _joined(values):
    """PyTorch tensors as one float64 vector, for one collective call instead of one each
    (float64 holds every float32 value and every count below 2**53 exactly)."""
    import torch

    return torch.cat([value.reshape(-1).to(torch.float64) for value in values])


def _split(joined, values):
    """`_joined`'s inverse: the parts of `joined` shaped as `values` (still float64)."""
    sizes = [value.numel() for value in values]
    return [part.reshape(v.shape) for part, v in zip(joined.split(sizes), values, strict=True)]


class EqualBatchNormStatistics(keras.callbacks.Callback):
    """After each training step, every process takes rank 0's running statistics (the
    non-trainable variables), as DistributedDataParallel broadcasts its buffers: without
    synchronized BatchNorm each process would otherwise keep statistics of its own batches,
    and validate and save different models. One broadcast per step, of a few kilobytes."""

    def on_train_batch_end(self, batch, logs=None):
        broadcast_variables(self.model.non_trainable_variables, flat=True)


class averaged_gradients:
    """While open, each trainable weight's gradient is averaged over all processes as soon
    as backpropagation has computed it: Keras' PyTorch train step then updates every
    process's weights with the same gradients.

    An all-reduce per weight, when its gradient is ready: the processes run the same graph,
    so the weights come in the same order in each. (DistributedDataParallel gathers them in
    buckets and overlaps the transfers with backpropagation: quicker on many GPUs.)
    """

    def __init__(self, variables):
        self._variables = list(variables)
        self._hooks = []

    def __enter__(self):
        processes = _torch_processes()  # on JAX, the step's gradient is the global batch's
        if processes == 1:
            return self
        import torch.distributed

        def average(parameter):
            torch.distributed.all_reduce(parameter.grad)
            parameter.grad.div_(processes)

        for variable in self._variables:
            parameter = variable.value
            if parameter.requires_grad:
                self._hooks.append(parameter.register_post_accumulate_grad_hook(average))
        return self

    def __exit__(self, *exception):
        for hook in self._hooks:
            hook.remove()
        self._hooks = []


class summed_metrics:
    """While open, the metrics' variables hold their totals over all processes (each
    variable reduced as its `aggregation` says: "sum" summed, "mean" averaged); on leaving,
    each process's own counts come back, so that a later read does not count twice."""

    def __init__(self, metrics):
        self._variables = []
        seen = set()
        for metric in metrics:
            for variable in metric.variables:
                if id(variable) not in seen and variable.aggregation in ("sum", "mean"):
                    seen.add(id(variable))
                    self._variables.append(variable)
        self._saved = []

    def __enter__(self):
        processes = _torch_processes()  # on JAX, the metrics see the global batch
        if processes == 1 or not self._variables:
            return self
        import torch
        import torch.distributed

        values = [variable.value.detach() for variable in self._variables]
        self._saved = [value.clone() for value in values]
        # One all-reduce for all of them, in float64 so that counts stay exact.
        flat = _joined(values)
        torch.distributed.all_reduce(flat)
        totals = _split(flat, values)
        for variable, value, total in zip(self._variables, values, totals, strict=True):
            if variable.aggregation == "mean":
                total = total / processes
            variable.assign(total.to(value.dtype))
        return self

    def __exit__(self, *exception):
        for variable, value in zip(self._variables, self._saved, strict=False):
            variable.assign(value)
        self._saved = []


def synchronized_moments(inputs, axes):
    """The mean and (biased) variance of `inputs` over `axes` and over every process, and
    the number of values they count, as `torch.nn.SyncBatchNorm` computes them for a batch
    split over processes. Differentiable: backpropagation sums each process's share of the
    gradient through the same all-reduces (`_summed_over_processes`)."""
    import torch

    local_count = 1
    for axis in axes:
        local_count *= inputs.shape[axis]
    # The count travels with the sums: a process may hold a smaller last batch.
    sums = torch.cat([inputs.sum(dim=axes), inputs.new_full((1,), float(local_count))])
    sums = _summed_over_processes(sums)
    count = sums[-1].detach()
    mean = sums[:-1] / count
    shape = [1] * inputs.dim()
    shape[-1] = -1  # channels last
    # Two passes, as in one process: the variance of values centred on the global mean.
    squares = _summed_over_processes(((inputs - mean.reshape(shape)) ** 2).sum(dim=axes))
    return mean, squares / count, count


def _summed_over_processes(tensor):
    """`tensor` summed over all processes, differentiable: the gradient of a sum is the sum
    of each process's gradient (what `torch.nn.SyncBatchNorm`'s backward all-reduces)."""
    import torch
    import torch.distributed

    class SumOverProcesses(torch.autograd.Function):
        @staticmethod
        def forward(context, value):
            total = value.clone()
            torch.distributed.all_reduce(total)
            return total

        @staticmethod
        def backward(context, gradient):
            total = gradient.clone()
            torch.distributed.all_reduce(total)
            return total

    return SumOverProcesses.apply(tensor)

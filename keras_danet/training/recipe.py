"""mmseg's training recipe as the methods of a Keras model: `compile()` with no arguments is
mmseg's DANet schedule, and `fit` trains all four heads with mmseg's loss.

`TrainingRecipe` is a mixin for `DANet` (before `keras.Model` in its bases). It needs from the
model `num_classes`, `training_heads` (the PAM, CAM and auxiliary classifiers) and
`with_all_outputs()`; the private parts of Keras it relies on are in `keras_internals.py`.
"""

import types

import keras
import numpy as np
from keras import ops

from keras_danet import distributed
from keras_danet.data.segmentation_dataset import SegmentationDataset
from keras_danet.training import keras_internals
from keras_danet.training.divergence import LossGrowthWarning
from keras_danet.training.input_check import check_arrays, checked_input, input_errors
from keras_danet.training.loss import DANetLoss, as_label_map, check_label_size
from keras_danet.training.mean_dice import MeanDice
from keras_danet.training.mean_iou import MeanIoU
from keras_danet.training.optimizer import TorchSGD
from keras_danet.training.schedule import (
    PolyDecay,
    SetPolyHorizon,
    horizon_for,
    poly_schedule_of,
)

# compile() arguments that describe a machine, not a training recipe.
EXECUTION_SETTINGS = ("jit_compile", "run_eagerly", "steps_per_execution")
# What fit and evaluate split between several processes themselves (other inputs are each
# process's own part).
_SHARDED = SegmentationDataset | np.ndarray


class TrainingRecipe:
    """`compile`, `fit` and `evaluate` of a DANet: mmseg's recipe, every batch checked.

    Example:
    >>> model.compile()                    # TorchSGD, PolyDecay, DANetLoss, mIoU
    >>> model.fit(train_data, epochs=20)   # all four heads trained
    """

    # Until compile() says otherwise: the training graph returns every head's logits.
    _train_all_heads = True
    _danet_loss = None
    # Loss-term trackers (listed by `metrics`), set whole by compile(); never mutated.
    _loss_terms = types.MappingProxyType({})
    # Steps taken by `fit` on this object (not restored with weights, unlike the optimizer's
    # iteration count, which a loaded compiled preset or .keras file brings back).
    _steps_trained = 0

    def call(self, inputs, training=None, mask=None):
        # While training with DANetLoss, the model returns every head's logits (the dict of
        # `with_all_outputs()`), because mmseg's loss needs them; otherwise the main logits.
        if training and self._train_all_heads:
            return self._training_graph()(inputs, training=True)
        return super().call(inputs, training=training, mask=mask)

    def _training_graph(self):
        graph = self.__dict__.get("_all_outputs_graph")
        if graph is None:
            graph = self.with_all_outputs()
            # Not tracked as a sub-model: its layers are this model's own, saved once.
            object.__setattr__(self, "_all_outputs_graph", graph)
        return graph

    def compile(
        self,
        optimizer="auto",
        loss="auto",
        metrics="auto",
        *,
        learning_rate=0.01,
        max_iterations=None,
        **kwargs,
    ):
        """Configures training; with no arguments, mmseg's DANet recipe.

        - `optimizer="auto"`: `TorchSGD` (momentum 0.9, L2 weight decay 5e-4 as PyTorch
          applies it) driven by `PolyDecay` (power 0.9, from `learning_rate` down to 1e-4 over
          `max_iterations` steps; `fit` sets the horizon to `epochs x steps` if not given).
        - `loss="auto"`: `DANetLoss`, main + PAM + CAM + 0.4 x auxiliary cross-entropy,
          label 255 ignored, averaged over all pixels. The four weighted terms are logged as
          `main_loss`, `pam_loss`, `cam_loss`, `aux_loss`; `loss` is their sum.
        - `metrics="auto"`: `training.MeanIoU` (Keras' `MeanIoU`, quicker on PyTorch) over
          the epoch, label 255 ignored. A list may name mmseg's metrics: "mIoU" (logged as
          `mean_iou`) and "mDice" (`mean_dice`, `training.MeanDice`), beside any Keras
          metric.

        Any of them can be replaced as in `keras.Model.compile`. A loss other than a
        `DANetLoss` is applied to the main logits only, and the PAM, CAM and auxiliary
        classifiers are then left out of training (frozen) for this compile.

        Example:
        >>> model.compile()                                    # mmseg's recipe
        >>> model.compile(learning_rate=1e-3, max_iterations=2000)
        >>> model.fit(train_data, validation_data=val_data, epochs=20)
        """
        if isinstance(optimizer, str) and optimizer == "auto":
            horizon = None
            if max_iterations is not None:
                horizon = horizon_for(max_iterations)
            optimizer = TorchSGD(PolyDecay(learning_rate, horizon))
        if isinstance(loss, str) and loss == "auto":
            loss = DANetLoss()
        if isinstance(metrics, str) and metrics == "auto":
            metrics = ["mIoU"]
        if isinstance(metrics, (list, tuple)):
            metrics = [self._named_metric(metric) for metric in metrics]
        danet_loss = loss if isinstance(loss, DANetLoss) else None
        # Before super().compile(), which fixes the trainable variables.
        self._train_all_heads = danet_loss is not None
        self.training_heads.trainable = self._train_all_heads
        self._danet_loss = danet_loss
        super().compile(
            optimizer=optimizer,
            loss=None if danet_loss else loss,
            metrics=metrics,
            **kwargs,
        )
        terms = {}
        if danet_loss is not None:
            self._training_graph()  # built here, never inside a distribution strategy's replica
            keras_internals.save_loss_in_compile_config(self, danet_loss)
            terms = {
                head: keras.metrics.Mean(name=f"{head}_loss") for head in danet_loss.head_weights
            }
        object.__setattr__(self, "_loss_terms", terms)

    def _compile_for_a_new_run(self, recipe=None):
        """`from_preset`'s rule: compiled with a preset's saved recipe (a `compile_config`,
        as Keras serialises it), else with `compile()`'s, for a run that starts now.

        The saved poly schedule's horizon was the finished run's, so it is left for `fit` to
        set; metrics that count classes (mIoU, mDice) are made for this model's classes, which
        `from_preset(num_classes=K)` may have changed; how the saving machine ran the steps
        is dropped, as in `compile_from_config`.
        """
        if not recipe:
            self.compile()
            return
        config = keras.saving.deserialize_keras_object(recipe)
        for setting in EXECUTION_SETTINGS:
            config.pop(setting, None)
        schedule = poly_schedule_of(config.get("optimizer"))
        if schedule is not None:
            schedule.decay_steps = None
        for key in ("metrics", "weighted_metrics"):
            if config.get(key):
                config[key] = [self._counting_these_classes(metric) for metric in config[key]]
        self.compile(**config)

    def _counting_these_classes(self, metric):
        settings = metric.get_config() if isinstance(metric, keras.metrics.Metric) else {}
        if "num_classes" not in settings or settings["num_classes"] == self.num_classes:
            return metric
        return type(metric).from_config({**settings, "num_classes": self.num_classes})

    def _build_optimizer_before_tracing(self):
        if (
            keras.backend.backend() == "tensorflow"
            and not keras_internals.has_distribution_strategy(self)
            and getattr(self, "optimizer", None) is not None
            and not self.optimizer.built
        ):
            # Keras' TensorFlow trainer builds the optimizer inside the first traced step
            # when no strategy is set, and tf.function traces a step that creates variables
            # twice: built first, the first step traces once (29 s -> 16 s, tiny model). Not
            # in compile(): a compiled model used for inference holds no optimizer state.
            self.optimizer.build(self.trainable_variables)

    def train_on_batch(self, *args, **kwargs):
        self._build_optimizer_before_tracing()
        if distributed.process_count() > 1 and not self.__dict__.get("_started_equal"):
            distributed.broadcast_variables(self.variables)  # once: every process as rank 0
            object.__setattr__(self, "_started_equal", True)
        with distributed.averaged_gradients(self.trainable_variables):
            return super().train_on_batch(*args, **kwargs)

    def _get_metrics_result_or_logs(self, logs):
        # Keras reads the metrics here at the end of each epoch and of each evaluation: in
        # processes under torchrun, the totals of all of them (each step's progress bar
        # shows this process's own).
        with distributed.summed_metrics(self.metrics):
            result = super()._get_metrics_result_or_logs(logs)
            if result is logs and logs and distributed.process_count() > 1:
                # Evaluation's logs leave out the loss terms, so Keras keeps the last step's
                # (this process's); the same names, over all processes.
                totals = self.get_metrics_result()
                if set(logs) <= set(totals):
                    result = {name: totals[name] for name in logs}
        return result

    def _named_metric(self, metric):
        """mmseg's metric names as Keras metrics over the epoch, label 255 ignored."""
        if metric == "mIoU":
            return MeanIoU(self.num_classes)
        if metric == "mDice":
            return MeanDice(self.num_classes)
        if metric == "mFscore":
            raise ValueError(
                "mFscore is not a fit metric; keras_danet.evaluate(model, data, "
                'metrics=["mFscore"]) reports it with precision and recall.'
            )
        return metric

    def training_run(self):
        """What `fit` did to this model since it was built or loaded, for a preset's
        metadata.json: steps, optimizer, learning-rate schedule, the last epoch's logs of
        the last `fit`; None if it has taken no step.

        Example:
        >>> model.fit(train, epochs=10)
        >>> model.training_run()["steps"], model.training_run()["final_loss"]
        """
        optimizer = getattr(self, "optimizer", None)
        if not self._steps_trained or optimizer is None:
            return None
        inner = getattr(optimizer, "inner_optimizer", None)  # mixed precision's loss scaling
        rate = keras_internals.learning_rate_of(inner or optimizer)
        run = {"steps": self._steps_trained, "optimizer": type(inner or optimizer).__name__}
        if inner is not None:
            run["loss_scale"] = True
        if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
            # NumPy numbers (a rate given as np.float32) as plain ones, for metadata.json.
            config = {
                key: value.item() if isinstance(value, np.generic) else value
                for key, value in rate.get_config().items()
            }
            run["schedule"] = {"class": type(rate).__name__, **config}
            run["learning_rate"] = config.get("initial_learning_rate")
        else:
            run["learning_rate"] = float(ops.convert_to_numpy(optimizer.learning_rate))
        history = getattr(getattr(self, "history", None), "history", None) or {}
        # Scalars only: a per-class metric (F1Score(average=None)) logs an array.
        last = {name: values[-1] for name, values in history.items() if values}
        last = {name: value for name, value in last.items() if np.ndim(value) == 0}
        if "loss" in last:
            run["final_loss"] = round(float(last.pop("loss")), 6)
        run.update({f"final_{name}": round(float(value), 6) for name, value in last.items()})
        return run

    def get_compile_config(self):
        config = super().get_compile_config()
        # A saved model carries the training recipe, not how this machine ran its steps.
        for setting in EXECUTION_SETTINGS:
            (config or {}).pop(setting, None)
        return config

    def compile_from_config(self, config):
        # Keras skips models whose compile() is overridden; this one round-trips its config.
        config = keras.saving.deserialize_keras_object(config)
        # How the saving machine ran the steps is not part of the recipe: `jit_compile=True`
        # saved on JAX would turn on torch.compile (minutes per input size) on PyTorch.
        for setting in EXECUTION_SETTINGS:
            config.pop(setting, None)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self):
        return super().metrics + list(self._loss_terms.values())

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        danet_loss = getattr(self, "_danet_loss", None)
        if danet_loss is None:
            main = y_pred["main"] if isinstance(y_pred, dict) else y_pred
            return super().compute_loss(x, y, main, sample_weight, training=training)
        terms = danet_loss.terms(y, y_pred, sample_weight)
        batch_size = ops.shape(y)[0]
        for head, value in terms.items():
            self._loss_terms[head].update_state(value, sample_weight=batch_size)
        total = ops.sum(ops.stack(list(terms.values())))
        # Under a tf.distribute strategy each replica's loss is divided by the replica count
        # (Keras' rule, so that summed gradients average over the global batch).
        total = keras_internals.scale_loss_for_distribution(total)
        for extra in self.losses:  # regularizers and add_loss(), as Keras' compute_loss
            total = total + keras_internals.additional_loss(self, extra)
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        training = isinstance(y_pred, dict)
        main = y_pred["main"] if training else y_pred
        # Keras' symbolic build under a tf.distribute strategy averages the labels into
        # floats (keras_internals.in_symbolic_build): their type is checked in real steps.
        labels = as_label_map(y, check_type=not keras_internals.in_symbolic_build())
        check_label_size(labels, main)
        logs = super().compute_metrics(x, y, main, sample_weight)
        if not training:  # evaluation computes the main logits only
            for tracker in self._loss_terms.values():
                logs.pop(tracker.name, None)
        return logs

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, **kw):
        """`keras.Model.fit`; it also sets the default poly schedule's horizon, checks the
        labels and images of every batch (training and validation), stops with an error at a
        NaN or infinite loss, and warns when the loss has grown tenfold over its first value
        (`LossGrowthWarning`).

        With `compile()`'s default optimizer and no `max_iterations`, the learning rate
        decays to its end value over `epochs x steps_per_epoch` steps, the whole of this
        call (an `initial_epoch` resumes inside that horizon).

        In several processes (`keras_danet.distributed`: torchrun on PyTorch, or
        `keras.distribution.initialize()` on JAX), each trains on its part of a keras_danet
        dataset or of arrays (`batch_size` images per process, as mmseg's per-GPU batch),
        the gradients are averaged over all processes at every step, and the logs count
        them all.
        """
        if isinstance(x, np.ndarray) and len(x) == 0:  # Keras: a bare StopIteration
            raise ValueError("fit() got no training batches: x holds 0 images.")
        options = {key: kw.pop(key) for key in ("sample_weight", "class_weight") if key in kw}
        dataset = shard = x if isinstance(x, SegmentationDataset) else None
        sharded_here = False
        if distributed.process_count() > 1:
            validation = kw.get("validation_data")
            if validation is not None:
                validation = keras.utils.unpack_x_y_sample_weight(validation)
            sharded_here = isinstance(x, _SHARDED) or (
                validation is not None and isinstance(validation[0], _SHARDED)
            )
            x, y, options, callbacks = self._one_process_part(x, y, options, callbacks)
            shard = x if dataset is not None else None
            if validation is not None:
                parts = _evaluation_part(*validation)
                kw["validation_data"] = (
                    parts[0] if parts[1] is None else parts[: 2 + (parts[2] is not None)]
                )
            if not distributed.is_main_process():
                verbose = 0
            distributed.broadcast_variables(self.variables)
            if keras.backend.backend() == "torch" and not self._batch_norm_synchronized():
                callbacks = [*(callbacks or []), distributed.EqualBatchNormStatistics()]
        checked = []
        if not kw.get("validation_split"):  # Keras splits arrays only, checked whole
            x, y, adapter = checked_input(
                x,
                y,
                self.num_classes,
                "fit()",
                batch_size=batch_size,
                steps_per_epoch=kw.get("steps_per_epoch"),
                # Keras' default: a PyDataset's batch order shuffled; other streams warn.
                shuffle=kw.get("shuffle", isinstance(x, keras.utils.PyDataset)),
                **options,
            )
            if adapter is not None:
                checked.append(adapter)
                options = {}
        else:
            check_arrays(x, y, self.num_classes, "fit()")
        validation = kw.get("validation_data")
        if validation is not None:
            val_x, val_y, val_weight = keras.utils.unpack_x_y_sample_weight(validation)
            val_x, val_y, adapter = checked_input(
                val_x,
                val_y,
                self.num_classes,
                "fit(validation_data=...)",
                sample_weight=val_weight,
                batch_size=kw.get("validation_batch_size") or batch_size,
                steps_per_epoch=kw.get("validation_steps"),
            )
            if adapter is not None:
                checked.append(adapter)
                kw["validation_data"] = adapter
        callbacks = [SetPolyHorizon(), *(callbacks or [])]
        if not any(isinstance(c, keras.callbacks.TerminateOnNaN) for c in callbacks):
            # A NaN loss ends fit with an error instead of training on with NaN weights;
            # raise_error also keeps BackupAndRestore's last good backup (Keras deletes it
            # in on_train_end, which a graceful stop would run).
            callbacks.append(keras.callbacks.TerminateOnNaN(raise_error=True))
        if not any(isinstance(c, LossGrowthWarning) for c in callbacks):
            callbacks.append(LossGrowthWarning())
        if distributed.process_count() > 1:  # last: it sees what every other one decided
            callbacks.append(distributed.AgreedStop())
        self._build_optimizer_before_tracing()
        before = self._optimizer_steps()
        try:
            with (
                input_errors(self, checked),
                distributed.averaged_gradients(self.trainable_variables),
                distributed.data_sharded_here(sharded_here),
            ):
                return super().fit(x, y, batch_size, epochs, verbose, callbacks, **options, **kw)
        finally:  # an interrupted fit trained too
            steps = self._steps_trained + self._optimizer_steps() - before
            object.__setattr__(self, "_steps_trained", steps)
            if shard is not dataset:  # the next fit goes on with the epochs' shuffles
                dataset.epoch = shard.epoch

    def _one_process_part(self, x, y, options, callbacks):
        """What this process trains on, one of several (torchrun, multi-process JAX): its
        shard of a keras_danet dataset or of arrays, each with as many batches; the
        callbacks that write files stay with rank 0 (keras_danet's BackupAndRestore restores
        in every process, writes in one)."""
        x, (y, *values) = _process_part(x, [y, *options.values()], even=True)
        options = dict(zip(options, values, strict=True))
        for callback in callbacks or []:
            if type(callback) is keras.callbacks.BackupAndRestore:
                raise ValueError(
                    "With several processes, use keras_danet.training.BackupAndRestore: "
                    "Keras' own would have every process write the same files at once."
                )
        if not distributed.is_main_process():
            writers = (
                keras.callbacks.ModelCheckpoint,
                keras.callbacks.CSVLogger,
                keras.callbacks.TensorBoard,
            )
            callbacks = [c for c in callbacks or [] if not isinstance(c, writers)]
        return x, y, options, callbacks

    def _batch_norm_synchronized(self):
        """Whether every BatchNorm computes its statistics over all processes (then each
        process's running statistics are the same without a broadcast)."""
        return all(
            getattr(layer, "synchronized_requested", False)
            for layer in self._flatten_layers()
            if isinstance(layer, keras.layers.BatchNormalization)
        )

    def _optimizer_steps(self):
        optimizer = getattr(self, "optimizer", None)  # absent until compile()
        return 0 if optimizer is None else int(ops.convert_to_numpy(optimizer.iterations))

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", **kw):
        """`keras.Model.evaluate`, with the labels and images of every batch checked as in
        `fit`. For mmseg's metrics at original resolution use `keras_danet.evaluate`.
        With several processes, each evaluates its part and the results count them all."""
        options = {key: kw.pop(key) for key in ("sample_weight",) if key in kw}
        # With several processes, this process's part (fit's validation comes sharded already).
        sharded_here = distributed.process_count() > 1 and isinstance(x, _SHARDED)
        if sharded_here and not kw.get("_use_cached_eval_dataset"):
            x, y, weight = _evaluation_part(x, y, options.get("sample_weight"))
            options = {"sample_weight": weight} if weight is not None else {}
        if not distributed.is_main_process():
            verbose = 0
        x, y, adapter = checked_input(
            x,
            y,
            self.num_classes,
            "evaluate()",
            batch_size=batch_size,
            steps_per_epoch=kw.get("steps"),
            **options,
        )
        if adapter is not None:
            options = {}
        with (
            input_errors(self, [adapter] if adapter is not None else []),
            distributed.data_sharded_here(sharded_here),
        ):
            return super().evaluate(x, y, batch_size, verbose, **options, **kw)


def _evaluation_part(x, y=None, sample_weight=None):
    """This process's part of evaluation data: under torchrun every image once over all
    processes (the metrics are summed over them), so the parts may differ by a batch; on
    JAX each step is one global batch, so the parts are made even, as for training (the
    first images are counted twice where the count is not a multiple of the processes)."""
    even = keras.backend.backend() == "jax"
    if isinstance(x, _SHARDED):
        count = len(x.files) if isinstance(x, SegmentationDataset) else len(x)
        if count < distributed.process_count():
            raise ValueError(
                f"{count} evaluation images for {distributed.process_count()} processes: "
                "every process needs at least one (each reports its part to the others)."
            )
    x, (y, sample_weight) = _process_part(x, [y, sample_weight], even=even)
    return x, y, sample_weight


def _process_part(x, beside, even):
    """This process's part of `x` (a keras_danet dataset or arrays) and of the arrays
    `beside` it (labels, weights), as PyTorch's DistributedSampler splits; with `even`, every
    process gets as many images. Anything else (a tf.data pipeline, a generator, a PyDataset
    of your own) is taken as this process's own part, as DistributedDataParallel takes a
    DataLoader's."""
    if isinstance(x, SegmentationDataset):
        rank, processes = distributed.process_index(), distributed.process_count()
        return x.sharded(rank, processes, even=even), beside
    if isinstance(x, np.ndarray):
        indices = distributed.shard_indices(len(x), even=even)
        return x[indices], [v[indices] if isinstance(v, np.ndarray) else v for v in beside]
    return x, beside

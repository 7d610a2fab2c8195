"""Every private piece of Keras the training recipe uses, in one place, each with its reason.

Keras 3.15 has no public way to do these. When an upgrade moves one of them, this file is
where it breaks (tests/training run each on all three backends); nothing else in the package
imports `keras.src` or reads a private attribute of `keras.Model` for training.
(`models/freeing_functional.py` overrides the functional graph's runner for memory; it falls back
to Keras' own loop when that moves.)
"""

from keras.src.backend.common.symbolic_scope import in_symbolic_scope
from keras.src.losses.loss import scale_loss_for_distribution
from keras.src.trainers.data_adapters import get_data_adapter
from keras.src.trainers.data_adapters.array_data_adapter import can_convert_arrays
from keras.src.trainers.data_adapters.data_adapter import DataAdapter
from keras.src.trainers.data_adapters.data_adapter_utils import get_torch_dataloader

# Why each:
# - The data adapters sit between the user's data and the step. `fit` and `evaluate` accept
#   a DataAdapter as x, which is how every batch is checked (input_check.py) whatever feeds
#   it: the adapter Keras would have made, wrapped. `can_convert_arrays` is Keras' own test
#   of "arrays", which are checked whole instead.
# - `scale_loss_for_distribution` is Keras' rule for a loss under tf.distribute (each
#   replica's loss divided by the replica count, so that summed gradients average over the
#   global batch; a no-op on other backends). The recipe's compute_loss, overridden for the
#   four-term loss, applies it as Keras' own does.
# - `Trainer._get_metrics_result_or_logs` (overridden in recipe.py, not imported) is where
#   every backend's fit and evaluate read the metrics at the end of an epoch or evaluation:
#   the one point at which processes under torchrun sum them, once each.
# - `in_symbolic_scope` tells Keras' symbolic build (`compute_output_spec`, which builds the
#   metrics before the first step) from a real step. Under a tf.distribute strategy, the
#   TensorFlow trainer builds them on the replicas' first batches reduced with "MEAN",
#   labels included, so integer labels arrive there as float: the label-type check of
#   compute_metrics is skipped there and kept in every real step.

__all__ = [
    "DataAdapter",
    "additional_loss",
    "can_convert_arrays",
    "get_data_adapter",
    "get_torch_dataloader",
    "has_distribution_strategy",
    "in_symbolic_build",
    "learning_rate_of",
    "save_loss_in_compile_config",
    "scale_loss_for_distribution",
]


def additional_loss(model, loss):
    """A regularizer's or `add_loss()` term as Keras' `compute_loss` adds it (cast and, under
    a strategy, scaled): the overridden compute_loss keeps that behaviour."""
    return model._aggregate_additional_loss(loss)


def in_symbolic_build():
    """Whether Keras is building state on symbolic tensors, not running a step."""
    return in_symbolic_scope()


def learning_rate_of(optimizer):
    """The learning rate `optimizer` was given, a schedule or a number: Keras keeps it as
    `_learning_rate`, and `optimizer.learning_rate` is only the schedule's value at the
    current step. (Pass a loss-scale wrapper's inner optimizer.)"""
    return getattr(optimizer, "_learning_rate", None)


def has_distribution_strategy(model):
    """Whether `model` was built inside a `tf.distribute` strategy's scope (TensorFlow)."""
    return model._distribute_strategy is not None


def save_loss_in_compile_config(model, loss):
    """Records `loss` as the compiled loss in what `model.save` writes. `compile` passes
    `loss=None` to Keras for the four-term loss (it is applied in `compute_loss`, not by
    Keras' loss container), so Keras would save none."""
    model._compile_config.config["loss"] = loss

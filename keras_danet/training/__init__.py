"""mmseg's DANet training recipe as Keras objects: the loss, the optimizer, the schedule, and
a backup callback that survives a kill.

`DANet.compile()` with no arguments assembles them; use them directly to change a part.
"""

from keras_danet.training.backup import BackupAndRestore
from keras_danet.training.divergence import LossGrowthWarning
from keras_danet.training.loss import DANetLoss
from keras_danet.training.mean_dice import MeanDice
from keras_danet.training.mean_iou import MeanIoU
from keras_danet.training.optimizer import TorchSGD
from keras_danet.training.schedule import PolyDecay

__all__ = [
    "BackupAndRestore",
    "DANetLoss",
    "LossGrowthWarning",
    "MeanDice",
    "MeanIoU",
    "PolyDecay",
    "TorchSGD",
]

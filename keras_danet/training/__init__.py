"""mmseg's DANet training recipe as Keras objects: the loss, the optimizer and the schedule.

`DANet.compile()` with no arguments assembles them; use them directly to change a part.
"""

from keras_danet.training.loss import DANetLoss
from keras_danet.training.optimizer import TorchSGD
from keras_danet.training.schedule import PolyDecay

__all__ = ["DANetLoss", "PolyDecay", "TorchSGD"]

from keras_danet.convert.mmseg import (
    CheckpointError,
    convert_mmseg_backbone,
    convert_mmseg_checkpoint,
)

__all__ = ["CheckpointError", "convert_mmseg_backbone", "convert_mmseg_checkpoint"]

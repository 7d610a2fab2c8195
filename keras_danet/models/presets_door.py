"""The models' one way into `keras_danet.presets`.

The presets package builds models (it imports `keras_danet.models`), so no model module may
import it when it loads: that was an import circle. The preset methods of `DANet` and
`ResNetV1c` (`presets`, `from_preset`, `save_to_preset`) reach it through `presets_package()`
at call time instead.
"""


def presets_package():
    import keras_danet.presets

    return keras_danet.presets


class PresetTableAttribute:
    """`Model.presets`: the preset table, read from the presets package when first asked."""

    def __get__(self, instance, owner):
        return presets_package().PRESETS


class PresetMethods:
    """`presets`, `from_preset` and `save_to_preset` for the models of keras_danet."""

    # Every preset by name (aliases too): `DANet.presets["danet_r50_cityscapes"]`.
    presets = PresetTableAttribute()

    @classmethod
    def from_preset(cls, handle, *, mirror=None, cache_dir=None, progress=True, **kwargs):
        """Builds this model with the weights of a preset (see `DANet.from_preset`)."""
        return presets_package().loading.from_preset(
            cls, handle, mirror=mirror, cache_dir=cache_dir, progress=progress, **kwargs
        )

    def save_to_preset(self, directory, metadata=None, *, overwrite=False):
        """Writes this model as a preset folder (config.json, model.weights.h5, metadata.json)
        that `from_preset(directory)` loads; see `DANet.save_to_preset`."""
        saving = presets_package().saving
        record = saving.record_to_save(
            getattr(self, "preset_metadata", None) or {}, directory, metadata or {}
        )
        return saving.save_to_preset(self, directory, metadata=record, overwrite=overwrite)

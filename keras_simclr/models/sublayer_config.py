"""`get_config`/`from_config` support for models built from other layers.

`ContrastiveModel`, `DistillationModel` and the fine-tuning model all take
Keras layers (an encoder, a head, an augmenter, ...) as constructor
arguments, some of them optional. These two helpers are the one place that
turns such arguments into config entries and back (not public API).
"""

import keras


def serialize_sublayers(model, names):
    """`{name: serialized getattr(model, name) or None}` for each name."""
    config = {}
    for name in names:
        layer = getattr(model, name)
        config[name] = keras.saving.serialize_keras_object(layer) if layer is not None else None
    return config


def deserialize_sublayers(config, names):
    """A copy of `config` with each named, non-None entry deserialized."""
    config = dict(config)
    for name in names:
        if config.get(name) is not None:
            config[name] = keras.saving.deserialize_keras_object(config[name])
    return config

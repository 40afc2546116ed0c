"""The model `fine_tune` trains: encoder, first projection-head layers, classifier."""

import keras
from keras import ops

from keras_simclr.augment.image_utils import to_unit_float
from keras_simclr.models.sublayer_config import deserialize_sublayers
from keras_simclr.models.sublayer_config import serialize_sublayers


@keras.saving.register_keras_serializable(package="keras_simclr")
class FineTuneModel(keras.Model):
    """images -> [uint8 to [0, 1]] -> augmentation -> encoder -> first head layers -> classifier.

    Everything is trained, BatchNorm in training mode when `training` is
    true. With `head_layers=k > 0` the classifier sits on the output of the
    first `k` layers of the projection head (SimCLR v2's fine-tuning from
    the middle of the head); with 0 on the encoder's features h.
    Serializable, so a fine-tuned model saves to `.keras` (e.g. as the
    teacher of a `DistillationModel`).

    Args:
        encoder: a `keras.Model` mapping float32 images in [0, 1] to
            features `(batch, F)`.
        head: a `ProjectionHead`, or None when `head_layers=0`.
        head_layers: how many of the head's layers are applied.
        classifier: a layer mapping the features to logits (`fine_tune`'s
            is a `Dense` named `"classifier"`).
        augmentation: a layer applied to the [0, 1] images, called with
            `training` (e.g. `RandomCropFlip`).
        **kwargs: forwarded to `keras.Model` (e.g. `name`).

    Example:

    ```python
    tuned = FineTuneModel(encoder, head, 1, keras.layers.Dense(10),
                          RandomCropFlip(4, seed=0))
    logits = tuned(images)
    ```

    References:
        - Chen et al., Big Self-Supervised Models are Strong Semi-Supervised
          Learners (SimCLR v2), NeurIPS 2020, section 2.
    """

    _SUBLAYERS = ("encoder", "head", "classifier", "augmentation")

    def __init__(self, encoder, head, head_layers, classifier, augmentation, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.head = head
        self.head_layers = head_layers
        self.classifier = classifier
        self.augmentation = augmentation

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if not self.encoder.built:
            self.encoder.build(input_shape)
        shape = tuple(self.encoder.compute_output_shape(input_shape))
        if self.head_layers:
            if not self.head.built:
                self.head.build(shape)
            shape = self.head.truncated_output_shape(shape, self.head_layers)
        if not self.classifier.built:
            self.classifier.build(shape)
        self.built = True

    def call(self, images, training=None):
        x = self.augmentation(to_unit_float(images), training=training)
        x = self.encoder(x, training=training)
        if self.head_layers:
            x = self.head(x, training=training, num_layers=self.head_layers)
        return self.classifier(ops.cast(x, "float32"))

    def get_config(self):
        config = super().get_config()
        config.update(serialize_sublayers(self, self._SUBLAYERS))
        config["head_layers"] = self.head_layers
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_sublayers(config, cls._SUBLAYERS))


# `.keras` files written before the class was public name it `_FineTuneModel`.
keras.saving.get_custom_objects()["keras_simclr>_FineTuneModel"] = FineTuneModel

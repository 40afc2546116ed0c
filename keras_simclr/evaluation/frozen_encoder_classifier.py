"""A classifier trained on the features of a frozen encoder (the linear probe)."""

import keras
from keras import ops

from keras_simclr.augment.image_utils import to_unit_float


class FrozenEncoderClassifier(keras.Model):
    """images -> [uint8 to [0, 1]] -> [augmentation] -> frozen encoder -> classifier.

    The model `linear_evaluation` trains when it augments the training
    images: the encoder runs in inference mode (BatchNorm with its moving
    statistics) and no gradient flows into it (`stop_gradient`); its
    features, cast to float32, feed the classifier. Keep the encoder's
    variables out of training as well (e.g. with `frozen_variables`), or
    weight decay and the optimizer's slots would reach them.

    Args:
        encoder: a `keras.Model` mapping float32 images in [0, 1] to
            features `(batch, F)`.
        classifier: a layer or model mapping features to logits.
        augmentation: an optional layer applied to the [0, 1] images,
            called with `training` (e.g. `RandomCropFlip`).
        **kwargs: forwarded to `keras.Model` (e.g. `name`).

    Example:

    ```python
    probe = FrozenEncoderClassifier(encoder, keras.layers.Dense(10),
                                    augmentation=RandomCropFlip(4, seed=0))
    with frozen_variables(encoder):
        probe.compile(optimizer="sgd", loss=loss)
        probe.fit(x_train, y_train, epochs=90)
    ```
    """

    def __init__(self, encoder, classifier, augmentation=None, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.classifier = classifier
        self.augmentation = augmentation

    def build(self, input_shape):
        if not self.encoder.built:
            self.encoder.build(input_shape)
        if not self.classifier.built:
            self.classifier.build(self.encoder.compute_output_shape(input_shape))
        self.built = True

    def call(self, images, training=None):
        x = to_unit_float(images)
        if self.augmentation is not None:
            x = self.augmentation(x, training=training)
        # The encoder always runs in inference mode (BatchNorm moving stats).
        features = ops.stop_gradient(self.encoder(x, training=False))
        return self.classifier(ops.cast(features, "float32"))

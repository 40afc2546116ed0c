import math
import numbers

import keras

_BLOCKS_PER_STAGE = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
_STAGE_FILTERS = (64, 128, 256, 512)


@keras.saving.register_keras_serializable(package="keras_simclr")
class ResNet(keras.Model):
    """ResNet v1 encoder, as used by SimCLR: images in [0, 1] to features h.

    Basic blocks for depth 18 and 34, bottleneck blocks (stride on the 3x3
    convolution) for 50, 101 and 152. Every block's last BatchNorm starts with
    gamma = 0, so each residual branch starts as the identity, as in
    google-research/simclr. The output is the global average pool of the last
    stage: `512 * width_multiplier` features for depth 18/34 and
    `2048 * width_multiplier` for 50 and up.

    Args:
        depth: one of 18, 34, 50, 101, 152.
        width_multiplier: channel multiplier (1, 2, 4, ... ; SimCLR's "2x";
            0.125 for tests), at least 1/64.
        cifar_stem: `True` for small images (CIFAR): a 3x3 stride-1
            convolution and no max-pool. `False`: the ImageNet stem, a 7x7
            stride-2 convolution and a 3x3 stride-2 max-pool.
        input_shape: image shape `(H, W, 3)`; `H` and `W` may be `None`.
        sync_batchnorm: if `True`, BatchNorm uses the statistics of the
            global batch. TensorFlow: every BatchNorm is
            `BatchNormalization(synchronized=True)`, which all-reduces them
            across the replicas of a `tf.distribute` strategy. JAX: accepted,
            and nothing needs doing: under `keras.distribution.DataParallel`
            the compiled step sees the global batch (sharded over the
            devices; XLA adds the cross-device reductions), so the batch
            statistics are already global, with or without this flag. Other
            backends: ignored (per-device statistics). Kept in the config, so
            a model saved on one backend loads on another.
        bn_momentum: BatchNorm moving-average momentum (SimCLR: 0.9).
        bn_epsilon: BatchNorm epsilon (SimCLR: 1e-5).
        **kwargs: forwarded to `keras.Model` (e.g. `name`).

    Raises:
        ValueError: an unsupported `depth`, a `width_multiplier` that is
            not a finite number >= 1/64 (0, negative, None, NaN), or an
            `input_shape` that is not `(height, width, 3)`.

    Example:

    ```python
    encoder = keras_simclr.models.ResNet(depth=18, cifar_stem=True,
                                         input_shape=(32, 32, 3))
    features = encoder(np.random.uniform(size=(8, 32, 32, 3)))  # (8, 512)
    ```

    References:
        - He et al., Deep Residual Learning for Image Recognition, 2016.
        - Chen et al., A Simple Framework for Contrastive Learning of Visual
          Representations (SimCLR), 2020, appendix B.9 (CIFAR stem).
    """

    def __init__(
        self,
        depth=50,
        width_multiplier=1,
        cifar_stem=False,
        input_shape=(None, None, 3),
        sync_batchnorm=False,
        bn_momentum=0.9,
        bn_epsilon=1e-5,
        **kwargs,
    ):
        if depth not in _BLOCKS_PER_STAGE:
            raise ValueError(
                f"`depth` must be one of {sorted(_BLOCKS_PER_STAGE)}. Received: depth={depth}"
            )
        if (
            isinstance(width_multiplier, bool)
            or not isinstance(width_multiplier, numbers.Real)
            or not math.isfinite(width_multiplier)
            or int(64 * width_multiplier) < 1
        ):
            raise ValueError(
                "`width_multiplier` must be a positive number, at least 1/64 "
                "(so that every convolution keeps a channel). "
                f"Received: width_multiplier={width_multiplier!r}"
            )
        input_shape = tuple(input_shape)
        if len(input_shape) != 3 or input_shape[-1] != 3:
            raise ValueError(
                f"`input_shape` must be (height, width, 3). Received: input_shape={input_shape}"
            )
        bottleneck = depth >= 50

        def batch_norm(name, zero_init=False):
            return keras.layers.BatchNormalization(
                momentum=bn_momentum,
                epsilon=bn_epsilon,
                # Keras refuses synchronized=True off TensorFlow (see the
                # docstring: on JAX the statistics are global already).
                synchronized=bool(sync_batchnorm) and keras.backend.backend() == "tensorflow",
                gamma_initializer="zeros" if zero_init else "ones",
                name=name,
            )

        def conv(filters, kernel_size, strides, name):
            return keras.layers.Conv2D(
                filters,
                kernel_size,
                strides=strides,
                padding="same",
                use_bias=False,
                kernel_initializer="he_normal",
                name=name,
            )

        inputs = keras.Input(shape=input_shape, name="images")
        stem_filters = int(64 * width_multiplier)
        if cifar_stem:
            x = conv(stem_filters, 3, 1, "stem_conv")(inputs)
        else:
            x = conv(stem_filters, 7, 2, "stem_conv")(inputs)
        x = batch_norm("stem_bn")(x)
        x = keras.layers.ReLU(name="stem_relu")(x)
        if not cifar_stem:
            x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)

        expansion = 4 if bottleneck else 1
        for stage, (blocks, base) in enumerate(zip(_BLOCKS_PER_STAGE[depth], _STAGE_FILTERS)):
            filters = int(base * width_multiplier)
            for block in range(blocks):
                strides = 2 if (block == 0 and stage > 0) else 1
                prefix = f"stage{stage + 1}_block{block + 1}"
                shortcut = x
                if strides != 1 or x.shape[-1] != filters * expansion:
                    shortcut = conv(filters * expansion, 1, strides, f"{prefix}_proj_conv")(x)
                    shortcut = batch_norm(f"{prefix}_proj_bn")(shortcut)
                if bottleneck:
                    y = conv(filters, 1, 1, f"{prefix}_conv1")(x)
                    y = batch_norm(f"{prefix}_bn1")(y)
                    y = keras.layers.ReLU(name=f"{prefix}_relu1")(y)
                    y = conv(filters, 3, strides, f"{prefix}_conv2")(y)
                    y = batch_norm(f"{prefix}_bn2")(y)
                    y = keras.layers.ReLU(name=f"{prefix}_relu2")(y)
                    y = conv(filters * 4, 1, 1, f"{prefix}_conv3")(y)
                    y = batch_norm(f"{prefix}_bn3", zero_init=True)(y)
                else:
                    y = conv(filters, 3, strides, f"{prefix}_conv1")(x)
                    y = batch_norm(f"{prefix}_bn1")(y)
                    y = keras.layers.ReLU(name=f"{prefix}_relu1")(y)
                    y = conv(filters, 3, 1, f"{prefix}_conv2")(y)
                    y = batch_norm(f"{prefix}_bn2", zero_init=True)(y)
                x = keras.layers.Add(name=f"{prefix}_add")([shortcut, y])
                x = keras.layers.ReLU(name=f"{prefix}_out")(x)
        outputs = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)

        kwargs.setdefault("name", f"resnet{depth}")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        self.depth = depth
        self.width_multiplier = width_multiplier
        self.cifar_stem = cifar_stem
        self.sync_batchnorm = sync_batchnorm
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon
        self.feature_dim = outputs.shape[-1]

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "depth": self.depth,
            "width_multiplier": self.width_multiplier,
            "cifar_stem": self.cifar_stem,
            "input_shape": tuple(self.inputs[0].shape[1:]),
            "sync_batchnorm": self.sync_batchnorm,
            "bn_momentum": self.bn_momentum,
            "bn_epsilon": self.bn_epsilon,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

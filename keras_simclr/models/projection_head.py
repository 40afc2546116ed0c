import keras


def _normalize_with_batch_statistics(norm, x):
    """`norm` (a BatchNormalization over the last axis) in training mode,
    without updating its moving averages. Statistics in float32, as Keras's
    layer computes them under a mixed-precision policy."""
    ops = keras.ops
    values = ops.cast(x, "float32")
    mean, variance = ops.moments(values, axes=[0])
    values = ops.batch_normalization(
        values,
        mean,
        variance,
        axis=-1,
        offset=None if norm.beta is None else ops.cast(norm.beta, "float32"),
        scale=None if norm.gamma is None else ops.cast(norm.gamma, "float32"),
        epsilon=norm.epsilon,
    )
    return ops.cast(values, x.dtype)


@keras.saving.register_keras_serializable(package="keras_simclr")
class ProjectionHead(keras.layers.Layer):
    """The projection head g(h) that maps encoder features h to projections z.

    `num_layers` Dense layers; every layer but the last is followed by
    BatchNorm and ReLU, the last is a plain Dense layer (with bias) whose
    output the contrastive loss sees. SimCLR v1 uses 2 layers, SimCLR v2
    uses 3.

    Args:
        num_layers: number of Dense layers, at least 1.
        hidden_dim: width of the hidden layers; `None` keeps the input width
            (SimCLR's choice).
        output_dim: width of the projection z (SimCLR: 128).
        sync_batchnorm: if `True`, BatchNorm uses the statistics of the
            global batch: `BatchNormalization(synchronized=True)` under a
            `tf.distribute` strategy on TensorFlow. JAX: accepted, and
            nothing needs doing: under `keras.distribution.DataParallel` the
            compiled step sees the global batch, so the batch statistics are
            already global. Other backends: ignored.
        bn_momentum: BatchNorm momentum (SimCLR: 0.9).
        bn_epsilon: BatchNorm epsilon (SimCLR: 1e-5).
        **kwargs: forwarded to `keras.layers.Layer`.

    Example:

    ```python
    head = keras_simclr.models.ProjectionHead(num_layers=2, output_dim=128)
    z = head(np.random.normal(size=(8, 512)))  # (8, 128)
    ```

    References:
        - Chen et al., A Simple Framework for Contrastive Learning of Visual
          Representations, 2020, eq. 2 (z = W2 relu(W1 h)).
        - Chen et al., Big Self-Supervised Models are Strong Semi-Supervised
          Learners (SimCLR v2), 2020, section 2 (3-layer head).
    """

    def __init__(
        self,
        num_layers=2,
        hidden_dim=None,
        output_dim=128,
        sync_batchnorm=False,
        bn_momentum=0.9,
        bn_epsilon=1e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(num_layers) < 1:
            raise ValueError(f"`num_layers` must be at least 1. Received: num_layers={num_layers}")
        if int(output_dim) < 1:
            raise ValueError(f"`output_dim` must be positive. Received: output_dim={output_dim}")
        self.num_layers = int(num_layers)
        self.hidden_dim = hidden_dim
        self.output_dim = int(output_dim)
        self.sync_batchnorm = sync_batchnorm
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon
        self.dense_layers = []
        self.norm_layers = []

    def build(self, input_shape):
        if len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError(
                "ProjectionHead expects features of shape (batch, dim) with a "
                f"known dim. Received: input_shape={input_shape}"
            )
        hidden_dim = self.hidden_dim or input_shape[-1]
        shape = input_shape
        for i in range(self.num_layers):
            last = i == self.num_layers - 1
            dense = keras.layers.Dense(
                self.output_dim if last else hidden_dim,
                use_bias=last,
                kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
                dtype=self.dtype_policy,
                name=f"dense_{i}",
            )
            dense.build(shape)
            shape = dense.compute_output_shape(shape)
            self.dense_layers.append(dense)
            if not last:
                norm = keras.layers.BatchNormalization(
                    momentum=self.bn_momentum,
                    epsilon=self.bn_epsilon,
                    # Keras refuses synchronized=True off TensorFlow (on JAX
                    # the statistics are global already: see the docstring).
                    synchronized=bool(self.sync_batchnorm)
                    and keras.backend.backend() == "tensorflow",
                    dtype=self.dtype_policy,
                    name=f"batch_normalization_{i}",
                )
                norm.build(shape)
                self.norm_layers.append(norm)

    def call(self, inputs, training=None, num_layers=None, batch_statistics=False):
        """Applies the head.

        Args:
            inputs: features h, shape (batch, dim).
            training: BatchNorm mode.
            num_layers: apply only the first `num_layers` layers (with their
                BatchNorm and ReLU). SimCLR v2 fine-tunes from the output of
                the first layer (`num_layers=1`). `None` applies them all.
            batch_statistics: with `training` false, `True` normalizes with
                the statistics of this batch, as training does, and leaves
                the moving averages unchanged (`ContrastiveModel` evaluates
                its loss this way). Ignored in training.
        """
        num_layers = self.num_layers if num_layers is None else num_layers
        x = inputs
        for i in range(num_layers):
            x = self.dense_layers[i](x)
            if i < self.num_layers - 1:
                norm = self.norm_layers[i]
                if batch_statistics and not training:
                    x = _normalize_with_batch_statistics(norm, x)
                else:
                    x = norm(x, training=training)
                x = keras.ops.relu(x)
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_dim,)

    def truncated_output_shape(self, input_shape, num_layers):
        """The output shape of `call(inputs, num_layers=num_layers)`.

        The first `num_layers` layers map `(..., dim)` features to
        `(..., width)`: `width` is `hidden_dim` (the input width when
        `hidden_dim=None`) for the hidden layers and `output_dim` when all
        layers are applied. Fine-tuning from a middle layer of the head
        (SimCLR v2) puts its classifier on this output. The head need not be
        built.

        Args:
            input_shape: the shape of the features h, `(..., dim)`.
            num_layers: how many of the head's layers are applied, from 0
                (the input itself) to `num_layers` of the head.

        Returns:
            the output shape, a tuple.

        Raises:
            ValueError: `num_layers` outside `[0, self.num_layers]`.

        Example:

        ```python
        head = ProjectionHead(num_layers=3, hidden_dim=256, output_dim=128)
        head.truncated_output_shape((None, 512), 1)  # (None, 256)
        ```
        """
        if int(num_layers) != num_layers or not 0 <= num_layers <= self.num_layers:
            raise ValueError(
                f"num_layers must be an integer between 0 and {self.num_layers}. "
                f"Received: num_layers={num_layers}"
            )
        input_shape = tuple(input_shape)
        if num_layers == 0:
            return input_shape
        if num_layers == self.num_layers:
            return self.compute_output_shape(input_shape)
        return input_shape[:-1] + (int(self.hidden_dim or input_shape[-1]),)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_layers": self.num_layers,
                "hidden_dim": self.hidden_dim,
                "output_dim": self.output_dim,
                "sync_batchnorm": self.sync_batchnorm,
                "bn_momentum": self.bn_momentum,
                "bn_epsilon": self.bn_epsilon,
            }
        )
        return config

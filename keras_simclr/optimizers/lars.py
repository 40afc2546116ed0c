import keras
from keras import ops

# BatchNorm and bias variables, as google-research/simclr excludes them.
# Keras names BatchNorm variables gamma/beta (and LayerNorm's too).
DEFAULT_EXCLUSIONS = ("batch_normalization", "gamma", "beta", "bias")


@keras.saving.register_keras_serializable(package="keras_simclr")
class LARS(keras.optimizers.Optimizer):
    """Layer-wise Adaptive Rate Scaling, SGD with momentum and a trust ratio.

    For each variable `w` with gradient `g`:

    ```
    g += weight_decay * w                       # unless excluded from decay
    trust = eeta * ||w|| / ||g||                # if both norms > 0, else 1;
                                                # 1 if excluded from adaptation
    v = momentum * v + lr * trust * g
    w -= momentum * v + lr * trust * g          # nesterov
    w -= v                                      # otherwise
    ```

    Weight decay belongs to the update rule (it also enters the trust
    ratio), so it is not handed to the Keras base class, which would add a
    second, decoupled decay.

    Exclusions match substrings of a variable's path (`"dense/bias"`,
    `"stage1_block1_bn1/gamma"`). They are resolved once in `build()` and
    looked up by variable index in `update_step`: under `tf.distribute` the
    update receives raw `tf.Variable`s that have no Keras path.

    Args:
        learning_rate: float or `keras.optimizers.schedules` schedule.
        momentum: momentum coefficient.
        weight_decay: L2 coefficient added to the gradient.
        eeta: trust coefficient (LARS paper's eta).
        nesterov: Nesterov momentum.
        exclude_from_weight_decay: name substrings of variables that get no
            weight decay. `None`: BatchNorm and bias variables
            (`DEFAULT_EXCLUSIONS`).
        exclude_from_layer_adaptation: name substrings of variables whose
            trust ratio is 1. `None`: the same as
            `exclude_from_weight_decay`.
        name: optimizer name.
        **kwargs: forwarded to `keras.optimizers.Optimizer` (`clipnorm`,
            `global_clipnorm`, `loss_scale_factor`, ...).

    Example:

    ```python
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=10_000, warmup_target=0.3 * batch_size / 256,
        warmup_steps=1_000)
    model.compile(optimizer=LARS(schedule, weight_decay=1e-6))
    ```

    References:
        - You et al., Large Batch Training of Convolutional Networks, 2017.
        - Chen et al., SimCLR, 2020, section B.1 (LARS, weight decay 1e-6).
    """

    def __init__(
        self,
        learning_rate=0.1,
        momentum=0.9,
        weight_decay=0.0,
        eeta=0.001,
        nesterov=False,
        exclude_from_weight_decay=None,
        exclude_from_layer_adaptation=None,
        name="lars",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(
                f"`momentum` must be in [0, 1). Received: momentum={momentum}"
            )
        if weight_decay is None or weight_decay < 0:
            raise ValueError(
                "`weight_decay` must be >= 0. "
                f"Received: weight_decay={weight_decay}"
            )
        self.momentum = momentum
        # Stored under its own name: the base class reads `self.weight_decay`
        # to apply decoupled decay, which LARS must not get.
        self.lars_weight_decay = float(weight_decay)
        self.eeta = eeta
        self.nesterov = nesterov
        self.exclude_from_weight_decay = (
            list(DEFAULT_EXCLUSIONS)
            if exclude_from_weight_decay is None
            else list(exclude_from_weight_decay)
        )
        self.exclude_from_layer_adaptation = (
            list(self.exclude_from_weight_decay)
            if exclude_from_layer_adaptation is None
            else list(exclude_from_layer_adaptation)
        )

    @staticmethod
    def _matches(variable, patterns):
        name = getattr(variable, "path", None) or variable.name
        return any(pattern in name for pattern in patterns)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._velocities = self.add_optimizer_variables(var_list, "velocity")
        self._decay_flags = [
            not self._matches(v, self.exclude_from_weight_decay) for v in var_list
        ]
        self._adapt_flags = [
            not self._matches(v, self.exclude_from_layer_adaptation)
            for v in var_list
        ]

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self._decay_flags[index] and self.lars_weight_decay:
            gradient = gradient + self.lars_weight_decay * variable
        if self._adapt_flags[index]:
            w_norm = ops.sqrt(ops.sum(ops.square(variable)))
            g_norm = ops.sqrt(ops.sum(ops.square(gradient)))
            both_positive = ops.logical_and(
                ops.greater(w_norm, 0.0), ops.greater(g_norm, 0.0)
            )
            trust = ops.where(
                both_positive,
                self.eeta * w_norm / ops.where(both_positive, g_norm, 1.0),
                1.0,
            )
            scaled = gradient * (lr * ops.cast(trust, variable.dtype))
        else:
            scaled = gradient * lr
        velocity = self._velocities[index]
        self.assign(velocity, self.momentum * velocity + scaled)
        if self.nesterov:
            self.assign_sub(variable, self.momentum * velocity + scaled)
        else:
            self.assign_sub(variable, velocity)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "weight_decay": self.lars_weight_decay,
                "eeta": self.eeta,
                "nesterov": self.nesterov,
                "exclude_from_weight_decay": self.exclude_from_weight_decay,
                "exclude_from_layer_adaptation": self.exclude_from_layer_adaptation,
            }
        )
        return config

"""LARS, the large-batch optimizer of SimCLR, as a Keras 3 optimizer."""

import math

import keras
from keras import ops

from keras_simclr.utils.validation import is_real_scalar

# BatchNorm and bias variables get neither weight decay nor a trust ratio, as
# in google-research/simclr (which matches "batch_normalization" and "bias").
# Keras 3 names BatchNormalization's variables "gamma" and "beta" inside
# layers that may have any name (e.g. "stage1_block1_bn1/gamma"), hence the
# extra patterns; they also match LayerNormalization's.
DEFAULT_EXCLUSIONS = ("batch_normalization", "gamma", "beta", "bias")


def _patterns(value, arg_name):
    if isinstance(value, str):
        return [value]
    try:
        patterns = list(value)
    except TypeError:
        patterns = None
    if patterns is None or not all(isinstance(p, str) for p in patterns):
        raise ValueError(
            f"`{arg_name}` must be a list of variable name substrings. "
            f"Received: {arg_name}={value!r}"
        )
    return patterns


@keras.saving.register_keras_serializable(package="keras_simclr")
class LARS(keras.optimizers.Optimizer):
    """Layer-wise Adaptive Rate Scaling: SGD with momentum and a trust ratio.

    For each variable `w` with gradient `g` (learning rate `lr`, velocity
    `v` starting at 0):

    ```
    g += weight_decay * w               # unless excluded from weight decay
    trust = eeta * ||w|| / ||g||        # if ||w|| > 0 and ||g|| > 0, else 1;
                                        # 1 if excluded from layer adaptation
    v = momentum * v + lr * trust * g
    w -= momentum * v + lr * trust * g  # if nesterov
    w -= v                              # otherwise
    ```

    Weight decay is part of the update rule (it enters the trust ratio), so
    it is not handed to the Keras base class, which would apply a second,
    decoupled decay.

    Exclusions are substrings of a variable's path (`"dense/bias"`,
    `"stage1_block1_bn1/gamma"`; its name when it has no path). They are
    resolved once, in `build()`, and looked up by variable index in
    `update_step`: under `tf.distribute` (and on the TensorFlow backend in
    general) `update_step` receives raw `tf.Variable`s without a Keras path.

    Args:
        learning_rate: a finite float >= 0, or a
            `keras.optimizers.schedules` schedule
            (SimCLR: `CosineDecay(0.0, ..., warmup_target=0.3 * batch / 256,
            warmup_steps=...)`). Defaults to 0.1.
        momentum: momentum coefficient in [0, 1). Defaults to 0.9.
        weight_decay: L2 coefficient added to the gradient, >= 0 (SimCLR:
            1e-6). Defaults to 0.
        eeta: trust coefficient, the LARS paper's eta, >= 0. Defaults to
            0.001.
        nesterov: whether to use Nesterov momentum. Defaults to `False`.
        exclude_from_weight_decay: list of name substrings; matching
            variables get no weight decay. `None` (default): BatchNorm and
            bias variables, `DEFAULT_EXCLUSIONS`.
        exclude_from_layer_adaptation: list of name substrings; matching
            variables get trust ratio 1 (plain SGD with momentum). `None`
            (default): the same list as `exclude_from_weight_decay`, as in
            google-research/simclr.
        name: name of the optimizer. Defaults to `"lars"`.
        **kwargs: forwarded to `keras.optimizers.Optimizer` (`clipnorm`,
            `global_clipnorm`, `loss_scale_factor`, `use_ema`, ...), except
            `weight_decay`, which is LARS's own.

    Raises:
        ValueError: a negative or non-finite number as `learning_rate` (a
            schedule or callable is not checked), `momentum` outside
            [0, 1), a negative or non-finite `weight_decay` or `eeta`, or
            exclusions that are not lists of strings.

    Example:

    ```python
    batch_size, steps = 512, 10_000
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=steps - steps // 10,
        warmup_target=0.3 * batch_size / 256, warmup_steps=steps // 10)
    model.compile(optimizer=LARS(schedule, weight_decay=1e-6))
    ```

    References:
        - [You et al., Large Batch Training of Convolutional Networks,
          2017](https://arxiv.org/abs/1708.03888), Algorithm 1.
        - [Chen et al., A Simple Framework for Contrastive Learning of
          Visual Representations, ICML 2020](https://arxiv.org/abs/2002.05709),
          appendix B.1 (LARS, weight decay 1e-6, BN and bias excluded).
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
        if is_real_scalar(learning_rate) and not (
            math.isfinite(learning_rate) and learning_rate >= 0
        ):
            # A schedule or callable can only be checked when it is called.
            raise ValueError(
                "`learning_rate` must be a finite number >= 0, or a "
                "schedule. Received: "
                f"learning_rate={learning_rate!r}"
            )
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not (is_real_scalar(momentum) and 0.0 <= momentum < 1.0):
            raise ValueError(f"`momentum` must be in [0, 1). Received: momentum={momentum!r}")
        if not (is_real_scalar(weight_decay) and math.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(
                "`weight_decay` must be a finite number >= 0. "
                f"Received: weight_decay={weight_decay!r}"
            )
        if not (is_real_scalar(eeta) and math.isfinite(eeta) and eeta >= 0):
            raise ValueError(f"`eeta` must be a finite number >= 0. Received: eeta={eeta!r}")
        self.momentum = float(momentum)
        # Not `self.weight_decay`: the base class reads that attribute to
        # apply its own decoupled decay, which LARS must not get.
        self.lars_weight_decay = float(weight_decay)
        self.eeta = float(eeta)
        self.nesterov = bool(nesterov)
        # Not `self.exclude_from_weight_decay`, which would hide the base
        # class's method of that name (overridden below).
        self.weight_decay_exclusions = (
            list(DEFAULT_EXCLUSIONS)
            if exclude_from_weight_decay is None
            else _patterns(exclude_from_weight_decay, "exclude_from_weight_decay")
        )
        self.layer_adaptation_exclusions = (
            list(self.weight_decay_exclusions)
            if exclude_from_layer_adaptation is None
            else _patterns(exclude_from_layer_adaptation, "exclude_from_layer_adaptation")
        )
        self._decay_excluded_ids = set()

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Excludes more variables from weight decay, before `build()`.

        Adds to the constructor's `exclude_from_weight_decay`; layer
        adaptation is unchanged.

        Args:
            var_list: variables to exclude.
            var_names: name substrings to exclude (kept in `get_config`).
        """
        if self.built:
            raise ValueError(
                "`exclude_from_weight_decay()` can only be configured before "
                "the optimizer is built."
            )
        if var_names:
            self.weight_decay_exclusions += _patterns(var_names, "var_names")
        if var_list:
            self._decay_excluded_ids.update(self._var_key(v) for v in var_list)

    @staticmethod
    def _matches(variable, patterns):
        name = getattr(variable, "path", None) or variable.name
        return any(pattern in name for pattern in patterns)

    def build(self, var_list):
        """Creates one velocity per variable and records its exclusions."""
        if self.built:
            return
        super().build(var_list)
        self._velocities = self.add_optimizer_variables(var_list, "velocity")
        # Indexed like `self._get_variable_index(variable)`.
        self._use_decay = [
            self._var_key(v) not in self._decay_excluded_ids
            and not self._matches(v, self.weight_decay_exclusions)
            for v in var_list
        ]
        self._use_adaptation = [
            not self._matches(v, self.layer_adaptation_exclusions) for v in var_list
        ]

    def update_step(self, gradient, variable, learning_rate):
        """One LARS step for one variable (see the class docstring)."""
        index = self._get_variable_index(variable)
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self._use_decay[index] and self.lars_weight_decay > 0:
            gradient = gradient + self.lars_weight_decay * variable
        if self._use_adaptation[index]:
            w_norm = ops.sqrt(ops.sum(ops.square(variable)))
            g_norm = ops.sqrt(ops.sum(ops.square(gradient)))
            both_positive = ops.logical_and(ops.greater(w_norm, 0.0), ops.greater(g_norm, 0.0))
            # The inner where keeps the unused branch finite (no 0 / 0).
            trust = ops.where(
                both_positive,
                self.eeta * w_norm / ops.where(both_positive, g_norm, 1.0),
                1.0,
            )
            scaled = gradient * (lr * ops.cast(trust, variable.dtype))
        else:
            scaled = gradient * lr
        velocity = self._velocities[index]
        new_velocity = self.momentum * velocity + scaled
        self.assign(velocity, new_velocity)
        if self.nesterov:
            self.assign_sub(variable, self.momentum * new_velocity + scaled)
        else:
            self.assign_sub(variable, new_velocity)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "weight_decay": self.lars_weight_decay,
                "eeta": self.eeta,
                "nesterov": self.nesterov,
                "exclude_from_weight_decay": list(self.weight_decay_exclusions),
                "exclude_from_layer_adaptation": list(self.layer_adaptation_exclusions),
            }
        )
        return config

"""The base of the model family: Keras's own `train_step`, one loss tail and
explicit per-step state updates (not public API).

`ContrastiveModel`, `MoCoModel` and `DistillationModel` let Keras run its own
`train_step` on every backend (mixed-precision loss scaling, the sum of the
replicas' gradients, the stateless JAX step stay Keras's) and supply only the
parts that differ. `BaseModel` fixes the order in which those parts run in
every training step:

1. `call`: `update_before_step()` (training only), then `forward(inputs)`;
2. `compute_loss`: `objective(...)`, the method's own loss, which also updates
   the method's metrics from the same tensors (so a cross-replica gather is
   done once per step); then the loss tail, the same for the whole family:
   the online probe's cross-entropy (when the model has a `probe` and the
   data labels), the losses added by layers (e.g. kernel regularizers),
   `update_after_loss(y_pred)` (training only) and the division by the
   replica count;
3. Keras computes the gradients and applies them; `compute_metrics` returns
   the metrics updated in step 2.

The two hooks are the only places where a model changes its own state inside
the step (MoCo: the key encoder's moving average before the forward pass, the
queue write after the loss has read the queue). They run inside the compiled
step, so they must be written in `keras.ops` and variable assignments.
"""

import keras
from keras import ops

from keras_simclr.distribute.cross_replica import scale_loss_for_replicas
from keras_simclr.models.sublayer_config import deserialize_sublayers
from keras_simclr.models.sublayer_config import serialize_sublayers


class BaseModel(keras.Model):
    """A `keras.Model` that Keras trains with its own `train_step`.

    Subclasses implement `forward` and `objective`, and may implement the
    state hooks `update_before_step` and `update_after_loss`; see the module
    docstring for when each runs. Constructor arguments that are layers are
    listed in `_SUBLAYERS` and serialized by `get_config` / `from_config`;
    subclasses add their other arguments to `get_config`.

    A subclass with an online probe sets `self.probe` (a layer whose logits
    `forward` returns as `y_pred["probe_logits"]`) and
    `self.probe_accuracy_tracker`, and maps the batch's labels to the probe's
    rows in `probe_labels`.
    """

    # Constructor arguments that are layers (serialized as such in get_config).
    _SUBLAYERS = ()

    # -- per-step state hooks -------------------------------------------------

    def update_before_step(self):
        """State updated once per training step, before the forward pass.

        Called by `call(..., training=True)`; the default does nothing.
        """

    def update_after_loss(self, y_pred):
        """State updated once per training step, after the loss read it.

        Called by `compute_loss(..., training=True)` with the forward pass's
        outputs; the default does nothing.
        """

    # -- forward pass and loss ------------------------------------------------

    def forward(self, inputs, training=None):
        """The forward pass (`call` without the state hook)."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `forward(inputs, training)`."
        )

    def objective(self, x, y, y_pred, sample_weight=None, training=True):
        """The method's own loss, a float32 scalar; updates its metrics."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `objective(x, y, y_pred, "
            "sample_weight, training)`."
        )

    def probe_labels(self, y):
        """The labels of the probe's rows (those of `y_pred["probe_logits"]`)."""
        return y

    def call(self, inputs, training=None):
        if training:
            self.update_before_step()
        return self.forward(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = self.objective(x, y, y_pred, sample_weight=sample_weight, training=training)
        if getattr(self, "probe", None) is not None and y is not None:
            labels = self.probe_labels(y)
            logits = y_pred["probe_logits"]
            loss = loss + ops.mean(
                keras.losses.sparse_categorical_crossentropy(
                    labels, ops.cast(logits, "float32"), from_logits=True
                )
            )
            self.probe_accuracy_tracker.update_state(labels, logits)
        # Losses added by layers (e.g. kernel regularizers), if any.
        for extra in self.losses:
            loss = loss + ops.cast(extra, "float32")
        if training:
            self.update_after_loss(y_pred)
        # Under tf.distribute, Keras sums the replicas' gradients: each
        # replica contributes its loss / R, as Keras's own Loss objects do.
        return scale_loss_for_replicas(loss)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        # Updated in compute_loss, from the tensors the loss used.
        return self.get_metrics_result()

    # -- serialization --------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        config.update(serialize_sublayers(self, self._SUBLAYERS))
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_sublayers(config, cls._SUBLAYERS))

"""Momentum copies and queues of negatives, shared by `MoCoModel` (its key
encoder and queue) and `ContrastiveModel(memory_size=...)` (SimCLR v2's
memory) (not public API).

A model keeps a momentum copy of its encoder and head (`clone_layer`,
`build_momentum_memory`): layers of the same config whose trainable
weights follow an exponential moving average of the originals
(`MomentumUpdate`, `weight_pairs`, `update_momentum_copy`), and a ring
buffer of L2-normalized rows (`gather_rows`, `enqueue`). The model owns every variable, so
its weight paths and `.keras` files do not depend on this module.
"""

import random

import keras
from keras import ops

from keras_simclr.distribute.cross_replica import cross_replica_concat
from keras_simclr.utils.tensors import l2_normalize


def clone_layer(layer, prefix):
    """An unbuilt copy of `layer` with the same config, named prefix + name."""
    config = layer.get_config()
    config["name"] = prefix + layer.name
    return layer.__class__.from_config(config)


class UnitRows(keras.initializers.Initializer):
    """Standard normal rows scaled to unit L2 norm (MoCo's queue init).

    `seed=None` draws an integer seed now, from Python's `random` (as
    Keras's own initializers do, so `keras.utils.set_random_seed` makes it
    reproducible): an unseeded random op raises on JAX when the model is
    built inside a traced function, as `fit` builds it.
    """

    def __init__(self, seed=None):
        self.seed = seed
        # Keras's `make_default_seed`, which is not public API.
        self._draw_seed = random.randint(1, int(1e9)) if seed is None else seed

    def __call__(self, shape, dtype=None):
        rows = keras.random.normal(shape, dtype=dtype, seed=self._draw_seed)
        return l2_normalize(rows)

    def get_config(self):
        return {"seed": self.seed}


class MomentumUpdate(keras.layers.Layer):
    """Moves every copied variable towards its original: an EMA.

    A layer of its own only for `autocast=False`: under a mixed-precision
    policy the variables are read in float32, so the update of an EMA with
    m = 0.999 is not rounded away in bfloat16. It holds no variables; it
    gets the (original, copy) pairs from `pairs_fn` at call time.
    """

    def __init__(self, pairs_fn, **kwargs):
        super().__init__(autocast=False, **kwargs)
        self.pairs_fn = pairs_fn

    def call(self, momentum):
        for original, copy in self.pairs_fn():
            value = ops.stop_gradient(ops.cast(original.value, copy.dtype))
            copy.assign(momentum * copy.value + (1.0 - momentum) * value)
        return momentum


def build_momentum_copy(owner, originals, copies, input_shape):
    """Builds the copies of a chain of layers and takes them off the optimizer.

    Args:
        owner: the model, named in the error.
        originals: the built layers, in the order they are chained (e.g.
            `[encoder, projection_head]`).
        copies: their `clone_layer` copies, in the same order.
        input_shape: the input shape of the first layer.

    Returns:
        The indices, in the concatenated weights of `originals`, of the
        trainable weights: the ones the moving average follows (parameters,
        not BatchNorm's moving statistics).

    Raises:
        ValueError: a copy does not have the weights of its original.
    """
    shape = input_shape
    for original, copy in zip(originals, copies):
        if not copy.built:
            copy.build(shape)
        shape = original.compute_output_shape(shape)
    original_weights = [w for layer in originals for w in layer.weights]
    copy_weights = [w for layer in copies for w in layer.weights]
    if [tuple(v.shape) for v in original_weights] != [tuple(v.shape) for v in copy_weights]:
        raise ValueError(
            f"The momentum copy built from the encoder's config does not have "
            f"the encoder's weights; {type(owner).__name__} needs an encoder and head "
            "whose `from_config(get_config())` rebuilds them. Received: "
            f"encoder {originals[0].name} with {len(original_weights)} weights, copy "
            f"with {len(copy_weights)}"
        )
    for weight in copy_weights:
        # Trained by the moving average, not by the optimizer. The layers
        # stay trainable, so their BatchNorm uses batch statistics.
        weight.trainable = False
    return [i for i, weight in enumerate(original_weights) if weight.trainable]


def build_momentum_memory(owner, copies, image_shape, size, names, seed=None):
    """Builds the momentum copy of `owner`'s encoder and head, then its
    queue, the queue's write position and the copy's `initialized` flag.

    Args:
        owner: the model, with built `encoder` and `projection_head`.
        copies: `[encoder_copy, head_copy]`, from `clone_layer`.
        image_shape: the encoder's input shape.
        size: the number of rows of the queue.
        names: the names of the three variables (queue, pointer, flag).
        seed: seed of the queue's random unit rows (`UnitRows`).

    Returns:
        `(indices, queue, pointer, initialized)`: `build_momentum_copy`'s
        indices and the three variables, created in that order.
    """
    originals = [owner.encoder, owner.projection_head]
    indices = build_momentum_copy(owner, originals, copies, image_shape)
    feature_shape = owner.encoder.compute_output_shape(image_shape)
    dim = owner.projection_head.compute_output_shape(feature_shape)[-1]
    queue = add_state(owner, names[0], (size, dim), UnitRows(seed=seed), "float32")
    pointer = add_state(owner, names[1], (), "zeros", "int32")
    # 0 until the first training step, which copies the weights (see
    # `update_momentum_copy`).
    initialized = add_state(owner, names[2], (), "zeros", "int32")
    return indices, queue, pointer, initialized


def weight_pairs(originals, copies, indices):
    """The `(original, copy)` weight pairs at `indices` of the concatenated
    weights of the layers `originals` and `copies`."""
    weights = [w for layer in originals for w in layer.weights]
    copy_weights = [w for layer in copies for w in layer.weights]
    return [(weights[i], copy_weights[i]) for i in indices]


def add_state(owner, name, shape, initializer, dtype):
    """A non-trainable float32-or-int state variable of `owner`, the same on
    every replica (only the first replica's assignment is kept)."""
    return owner.add_weight(
        name=name,
        shape=shape,
        initializer=initializer,
        dtype=dtype,
        trainable=False,
        autocast=False,
        aggregation="only_first_replica",
    )


def update_momentum_copy(update, initialized, momentum):
    """Runs the `MomentumUpdate` `update` with `momentum`, or with 0 (a copy
    of the originals) while the int32 flag `initialized` is 0; sets it.

    The flag, not an assignment in `build`: Keras may build a model in a
    scratch graph, where an assignment would never run.
    """
    momentum = ops.where(
        initialized.value > 0,
        ops.convert_to_tensor(momentum, "float32"),
        ops.convert_to_tensor(0.0, "float32"),
    )
    update(momentum)
    initialized.assign(ops.ones((), "int32"))


def gather_rows(rows):
    """`rows` L2-normalized in float32 and gathered from every replica, in
    replica order (the global batch's rows)."""
    gathered, _ = cross_replica_concat(l2_normalize(ops.cast(rows, "float32")))
    return gathered


def enqueue(queue, pointer, rows):
    """Writes `rows` over the oldest rows of the ring buffer `queue`.

    Row i goes to `(pointer + i) % queue_size`, then the pointer moves past
    the last one. Every replica writes the same (gathered) rows, so the
    buffer stays the same on all of them.

    Args:
        queue: a `(queue_size, d)` float32 variable.
        pointer: an int32 scalar variable, the row the next write starts at.
        rows: `(count, d)` float32 rows, `count <= queue_size`.
    """
    size = queue.shape[0]
    count = ops.shape(rows)[0]
    start = pointer.value
    indices = (start + ops.arange(count, dtype="int32")) % size
    queue.assign(ops.scatter_update(queue.value, indices[:, None], rows))
    pointer.assign((start + count) % size)

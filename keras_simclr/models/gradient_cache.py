"""Gradient caching: a large contrastive batch encoded in chunks, with exact
gradients and the activation memory of one chunk (not public API; see
`encode_in_chunks`).

Gao et al. (2021) observe that a contrastive loss couples the examples of a
batch only through their projections z, which are small. So the forward
pass encodes the batch chunk by chunk and keeps only z (and the features
h), never the activations; the loss and its gradient with respect to z are
computed on the whole batch; then each chunk's forward pass is run again,
this time with its activations, and back-propagated with its slice of that
cached gradient, the chunks' parameter gradients summing to the full-batch
gradient. The cost is one extra forward pass of the encoder.

Here that algorithm is one differentiable function: its forward pass is a
loop over the chunks, and its custom gradient is a second loop that runs
each chunk's forward pass again and back-propagates the upstream gradient
of its rows. Keras's own `train_step` (loss scaling, the sum of the
replicas' gradients, the stateless JAX step) differentiates through it like
through any other layer, and the loop is compiled once whatever the number
of chunks. The loops are written in the backend's own control flow and
autodiff (`jax.lax.scan` and `jax.vjp`; `tf.while_loop` and
`tf.GradientTape`), since a vector-Jacobian product inside a loop is what
`keras.ops` does not provide.

The encoder's state: each chunk normalizes with its own batch statistics,
as a replica holding that chunk would, and the float state (BatchNorm
moving statistics) moves once per step, by the mean of the chunks' updates
from the state at the start of the step, as `MirroredStrategy` averages
its replicas' updates. Integer state (random seed states) is carried from
chunk to chunk, so chunks draw different dropout masks; the second loop
starts again from the state of the first, so every chunk is recomputed
exactly (the same masks).
"""

import contextlib

import keras
from keras import ops
from keras.src.backend import AutocastScope
from keras.src.backend import get_autocast_scope

from keras_simclr.distribute.cross_replica import num_replicas_in_sync


def chunk_rows(views, chunk_size, paired):
    """`views` cut into `(chunks, rows, ...)`.

    `paired`: `views` is `[view a of N images; view b of the same N]` and
    chunk c holds view a then view b of images `c * chunk_size ...
    (c + 1) * chunk_size - 1` (`2 * chunk_size` rows); else chunk c holds
    rows `c * chunk_size ...`.
    """
    image_shape = tuple(views.shape[1:])
    if not paired:
        return ops.reshape(views, (-1, chunk_size) + image_shape)
    halves = ops.reshape(views, (2, -1, chunk_size) + image_shape)
    pairs = ops.transpose(halves, (1, 0) + tuple(range(2, len(halves.shape))))
    return ops.reshape(pairs, (-1, 2 * chunk_size) + image_shape)


def unchunk_rows(chunked, paired):
    """The inverse of `chunk_rows` for per-row outputs `(chunks, rows, ...)`."""
    row_shape = tuple(chunked.shape[2:])
    if not paired:
        return ops.reshape(chunked, (-1,) + row_shape)
    pairs = ops.reshape(chunked, (ops.shape(chunked)[0], 2, -1) + row_shape)
    halves = ops.transpose(pairs, (1, 0) + tuple(range(2, len(pairs.shape))))
    return ops.reshape(halves, (-1,) + row_shape)


class _Network:
    """Encoder then projection head as one pure function of their variables.

    The state is split into its float part (BatchNorm moving statistics),
    which every chunk reads at its value at the start of the step, and its
    integer part (seed states), carried from chunk to chunk.
    """

    def __init__(self, encoder, head, head_kwargs):
        self.encoder = encoder
        self.head = head
        self.head_kwargs = head_kwargs
        self.trainable = list(encoder.trainable_variables) + list(head.trainable_variables)
        self.state = list(encoder.non_trainable_variables) + list(head.non_trainable_variables)
        self.is_float = [
            keras.backend.standardize_dtype(v.dtype).startswith(("float", "bfloat"))
            for v in self.state
        ]
        # The mixed-precision autocast of the caller (the model's `call`):
        # the second loop runs in the backward pass, outside that call, and
        # must compute exactly what the first one did.
        # (A new scope object each time: entering the caller's own object
        # again would overwrite the scope it restores on exit.)
        scope = get_autocast_scope()
        self.autocast_dtype = None if scope is None else scope.dtype
        self._split_trainable = len(encoder.trainable_variables)
        self._split_state = len(encoder.non_trainable_variables)

    def split(self, state):
        """`(float part, integer part)` of a state list."""
        floats = [v for v, f in zip(state, self.is_float) if f]
        integers = [v for v, f in zip(state, self.is_float) if not f]
        return floats, integers

    def merge(self, floats, integers):
        """The state list from its two parts (inverse of `split`)."""
        floats, integers = iter(floats), iter(integers)
        return [next(floats) if f else next(integers) for f in self.is_float]

    def __call__(self, params, floats, integers, images):
        """`((h, z), new_floats, new_integers)` of one chunk, training mode."""
        state = self.merge(floats, integers)
        autocast = contextlib.nullcontext()
        if self.autocast_dtype is not None:
            autocast = AutocastScope(self.autocast_dtype)
        with autocast:
            return self._call(params, state, images)

    def _call(self, params, state, images):
        p, s = self._split_trainable, self._split_state
        features, encoder_state = self.encoder.stateless_call(
            list(params[:p]), state[:s], images, training=True
        )
        z, head_state = self.head.stateless_call(
            list(params[p:]), state[s:], features, training=True, **self.head_kwargs
        )
        new_floats, new_integers = self.split(list(encoder_state) + list(head_state))
        return (features, z), new_floats, new_integers


def _check_chunks(images, chunk_size):
    """Raises unless `chunk_size` divides the number of `images` (if known)."""
    if images is not None and images % chunk_size:
        raise ValueError(
            "`micro_batch_size` must divide the number of images of a batch "
            "(per replica under a distribution strategy), so that every chunk "
            f"holds the same number. Received: {images} images per batch, "
            f"micro_batch_size={chunk_size}"
        )


def encode_in_chunks(encoder, head, views, chunk_size, paired=True, head_kwargs=None):
    """`(h, z)` of `views`, encoded `chunk_size` images at a time with
    gradient caching (training mode).

    The result, and its gradient with respect to every trainable weight of
    `encoder` and `head`, equal those of `head(encoder(views))` when the
    encoder and head process each example independently; with BatchNorm,
    each chunk normalizes with its own statistics, as a replica holding that
    chunk would (unsynchronized BatchNorm). The non-trainable state
    (BatchNorm moving statistics, seed states) is updated once per chunk, in
    order. Only the views, the features h and the projections z of the
    whole batch are kept; the activations of one chunk at a time.

    Args:
        encoder: a built `keras.Model` mapping images to features h.
        head: a built layer mapping h to projections z.
        views: the images, `(rows, H, W, C)`.
        chunk_size: images per chunk; must divide the number of images
            (`rows / 2` when `paired`).
        paired: the rows are `[view a of N images; view b of the same N]`,
            and both views of an image go in the same chunk
            (`2 * chunk_size` rows); else any rows, `chunk_size` per chunk.
        head_kwargs: extra keyword arguments of the head's call.

    Returns:
        `(h, z)`, each with the rows of `views`, in their order.

    Example:

    ```python
    # Inside a training step: 2N views, both views of 64 images per chunk.
    h, z = encode_in_chunks(encoder, projection_head, views, chunk_size=64)
    ```

    References:
        - Gao, Zhang, Han and Callan, Scaling Deep Contrastive Learning
          Batch Size under Memory Limited Setup, RepL4NLP 2021.
    """
    rows = views.shape[0]
    _check_chunks(rows if rows is None or not paired else rows // 2, chunk_size)
    if num_replicas_in_sync() > 1:
        synchronized = [
            layer.name
            for model in (encoder, head)
            for layer in model._flatten_layers(include_self=True, recursive=True)
            if getattr(layer, "synchronized", False)
        ]
        if synchronized:
            raise ValueError(
                "Gradient caching (`micro_batch_size`) normalizes each chunk "
                "with its own BatchNorm statistics, so it cannot run "
                "synchronized BatchNorm under a multi-replica strategy: build "
                "the encoder with `sync_batchnorm=False`. Received: synchronized "
                f"BatchNorm layers {synchronized[:3]}"
            )
    network = _Network(encoder, head, dict(head_kwargs or {}))
    chunks = chunk_rows(views, chunk_size, paired)
    params = [v.value for v in network.trainable]
    floats, integers = network.split([v.value for v in network.state])
    if keras.backend.backend() == "jax":
        cached = _jax_cached
    elif keras.backend.backend() == "tensorflow":
        cached = _tf_cached
    else:
        raise ValueError(
            "Gradient caching (`micro_batch_size`) runs on the TensorFlow and "
            f"JAX backends. Received: backend {keras.backend.backend()!r}"
        )
    outputs, changes, new_integers = cached(network, params, floats, integers, chunks)
    # The mean of the chunks' updates, as a change: a float state that no
    # chunk changes (e.g. a frozen layer's weights) stays bit-identical.
    count = ops.cast(ops.shape(chunks)[0], "float32")
    new_floats = [
        ops.cast(ops.cast(f, "float32") + ops.cast(c, "float32") / count, f.dtype)
        for f, c in zip(floats, changes)
    ]
    for variable, value in zip(network.state, network.merge(new_floats, new_integers)):
        variable.assign(value)
    features, z = outputs
    return unchunk_rows(features, paired), unchunk_rows(z, paired)


def augment_in_chunks(augmenter, images, chunk_size):
    """Two random views of every image, drawn `chunk_size` images at a time:
    `[view a of N images; view b of the same N]`.

    The augmentation's intermediate images (crops, colour, blur: several
    float32 copies of the views) then take the memory of one chunk; only the
    views themselves are kept for the whole batch. Each chunk draws from the
    augmenter's random state where the previous one left it (the state moves
    on once per chunk), so the views are as random as one call on the whole
    batch, but not the same draws. No gradient flows through the views.

    Args:
        augmenter: a built layer drawing one view of each image of a batch
            (e.g. `SimCLRAugmentation`).
        images: `(N, H, W, 3)`; `chunk_size` must divide `N`.
        chunk_size: images per chunk.

    Returns:
        the `2N` views.
    """
    _check_chunks(images.shape[0], chunk_size)
    chunks = chunk_rows(images, chunk_size, paired=False)
    params = [v.value for v in augmenter.trainable_variables]
    variables = list(augmenter.non_trainable_variables)

    def draw_step(state, chunk):
        # `[view a; view b]` of the chunk, as the model's one call on [x; x].
        views, state = augmenter.stateless_call(
            params, state, ops.concatenate([chunk, chunk], axis=0), training=True
        )
        return list(state), [views]

    pair_spec = keras.KerasTensor((2 * chunk_size,) + tuple(images.shape[1:]), images.dtype)
    state, (views,) = _serial_scan(
        draw_step,
        [v.value for v in variables],
        chunks,
        lambda: [augmenter.compute_output_spec(pair_spec)],
    )
    for variable, value in zip(variables, state):
        variable.assign(value)
    return ops.stop_gradient(unchunk_rows(views, paired=True))


def _serial_scan(step, carry, xs, output_specs=list):
    """`jax.lax.scan(step, carry, xs)` on JAX and TensorFlow, one chunk at a
    time: `step(carry, x) -> (carry, outputs)` over the chunks of `xs` (a
    tensor or a structure of tensors, chunk first); returns `(carry, a list
    of the stacked outputs)`.

    TensorFlow stacks the outputs in `TensorArray`s of
    `output_specs()` (KerasTensors, one per output); its loop runs one chunk
    at a time (`parallel_iterations=1`): the chunks do not depend on each
    other, and `tf.while_loop` would otherwise run up to 10 of them at once,
    with their activations.
    """
    if keras.backend.backend() == "jax":
        import jax

        return jax.lax.scan(step, carry, xs)
    import tensorflow as tf

    count = tf.shape(keras.tree.flatten(xs)[0])[0]
    arrays = [
        tf.TensorArray(spec.dtype, size=count, element_shape=spec.shape) for spec in output_specs()
    ]

    def body(index, carry, arrays):
        carry, outputs = step(carry, keras.tree.map_structure(lambda a: a[index], xs))
        return index + 1, carry, [a.write(index, o) for a, o in zip(arrays, outputs)]

    _, carry, arrays = tf.while_loop(
        lambda index, *_: index < count, body, (0, carry, arrays), parallel_iterations=1
    )
    return carry, [a.stack() for a in arrays]


def _forward(network, params, floats, integers, chunks):
    """The first pass: `(outputs, sums of the chunks' changes of the float
    state, integer state)`, no gradient kept."""

    def step(carry, images):
        integers, changes = carry
        outputs, new_floats, integers = network(params, floats, integers, images)
        changes = [c + (n - f) for c, n, f in zip(changes, new_floats, floats)]
        return (list(integers), changes), list(outputs)

    def output_specs():
        chunk_spec = keras.KerasTensor(tuple(chunks.shape[1:]), dtype=chunks.dtype)
        features_spec = network.encoder.compute_output_spec(chunk_spec)
        return [features_spec, network.head.compute_output_spec(features_spec)]

    zeros = [ops.zeros_like(f) for f in floats]
    (integers, changes), outputs = _serial_scan(step, (list(integers), zeros), chunks, output_specs)
    return outputs, changes, integers


def _jax_cached(network, params, floats, integers, chunks):
    """`(outputs, sums of the chunks' changes of the float state, integer state)`."""
    import jax
    import jax.numpy as jnp

    @jax.custom_vjp
    def cached(params, floats, integers, chunks):
        return _forward(network, params, floats, integers, chunks)

    def cached_forward(params, floats, integers, chunks):
        # The residuals are the inputs: no activation is kept.
        result = _forward(network, params, floats, integers, chunks)
        return result, (params, floats, integers, chunks)

    def cached_backward(residuals, cotangents):
        params, floats, integers, chunks = residuals
        upstream = cotangents[0]

        def step(carry, chunk):
            integers, grads = carry
            images, chunk_upstream = chunk

            def outputs_of(p):
                outputs, _, new_integers = network(p, floats, integers, images)
                return list(outputs), new_integers

            _, pullback, integers = jax.vjp(outputs_of, params, has_aux=True)
            (chunk_grads,) = pullback(chunk_upstream)
            return (integers, jax.tree.map(jnp.add, grads, chunk_grads)), []

        zeros = jax.tree.map(jnp.zeros_like, params)
        (_, grads), _ = _serial_scan(step, (integers, zeros), (chunks, upstream))
        return grads, None, None, None

    cached.defvjp(cached_forward, cached_backward)
    return cached(params, floats, integers, chunks)


def _tf_cached(network, params, floats, integers, chunks):
    """`(outputs, sums of the chunks' changes of the float state, integer state)`."""
    import tensorflow as tf

    num_params, num_floats = len(params), len(floats)

    @tf.custom_gradient
    def cached(*flat):
        params = list(flat[:num_params])
        floats = list(flat[num_params : num_params + num_floats])
        integers = list(flat[num_params + num_floats :])
        outputs, float_sums, new_integers = _forward(network, params, floats, integers, chunks)

        def grad(*upstream):
            upstream = [
                tf.zeros_like(o) if u is None else tf.cast(u, o.dtype)
                for u, o in zip(upstream[:2], outputs)
            ]

            def step(carry, chunk):
                integers, grads = carry
                images, chunk_upstream = chunk
                with tf.GradientTape() as tape:
                    tape.watch(params)
                    chunk_outputs, _, integers = network(params, floats, integers, images)
                chunk_grads = tape.gradient(
                    list(chunk_outputs),
                    params,
                    output_gradients=chunk_upstream,
                    unconnected_gradients=tf.UnconnectedGradients.ZERO,
                )
                return (list(integers), [g + c for g, c in zip(grads, chunk_grads)]), []

            zeros = [tf.zeros_like(p) for p in params]
            (_, grads), _ = _serial_scan(step, (list(integers), zeros), (chunks, upstream))
            return grads + [None] * (len(floats) + len(integers))

        return tuple(outputs) + tuple(float_sums) + tuple(new_integers), grad

    flat = cached(*params, *floats, *integers)
    return tuple(flat[:2]), list(flat[2 : 2 + num_floats]), list(flat[2 + num_floats :])

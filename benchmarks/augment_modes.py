"""How `augment_throughput` runs and times a two-view augmentation in each mode.

TensorFlow: `in_model_xla` / `in_model_graph` (a ready uint8 batch through a `tf.function` with
and without XLA) and `tf_data` / `tf_data_xla` (a parallel, prefetched `tf.data` map); JAX:
`in_model_xla` (`jax.jit` of the layer's `stateless_call`); torch: `per_image` (a loop over PIL
images) and `dataloader` (a `DataLoader` with workers). Every step waits for its views.
"""

import itertools

from benchmarks import common


def time_steps(step, args):
    """Times `warmup_steps + steps` calls of `step()` (one batch); the first is `compile_s`."""
    times = common.run_steps(step, args.warmup_steps + args.steps)
    rates = common.step_rates(times, args.warmup_steps, args.batch_size)
    rates["compile_s"] = rates.pop("first_step_s")
    return {"status": "measured", **rates}


def time_iterator(make_iterator, args):
    """Times an iterator of ready batches; `compile_s` covers building it and its first batch."""
    state = {}

    def step():
        if "iterator" not in state:
            state["iterator"] = make_iterator()
        next(state["iterator"])

    return time_steps(step, args)


def failed(error):
    return {"status": "failed", "reason": f"{type(error).__name__}: {error}".strip()[:2000]}


def run_tf_mode(mode, two_views, images, args):
    """Times `two_views` (uint8 batch -> float32 views) in a TensorFlow mode."""
    import tensorflow as tf

    function = tf.function(two_views, jit_compile=mode.endswith("_xla"))
    if mode.startswith("in_model"):
        # Ready batches, already tensors (on the accelerator where there is one).
        batches = itertools.cycle(
            [tf.constant(b) for b in common.full_batches(images, args.batch_size)]
        )

        def step():
            views = function(next(batches))
            views[0, 0, 0, 0].numpy()  # waits for the step

        return time_steps(step, args)

    def make_iterator():
        dataset = (
            tf.data.Dataset.from_tensor_slices(images)
            .repeat()
            .batch(args.batch_size, drop_remainder=True)
            .map(function, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
            .prefetch(tf.data.AUTOTUNE)
        )
        return iter(dataset)

    return time_iterator(make_iterator, args)


def run_jax_in_model(layer, images, args):
    """Times a Keras layer's two views under `jax.jit`, as Keras's JAX trainer calls it."""
    import jax
    import jax.numpy as jnp

    layer.build((2 * args.batch_size,) + images.shape[1:])

    @jax.jit
    def step_fn(non_trainable, batch):
        # `stateless_call` threads the seed generators' state, as Keras's JAX trainer does.
        return layer.stateless_call(
            [], non_trainable, jnp.concatenate([batch, batch], axis=0), training=True
        )

    state = {"non_trainable": [v.value for v in layer.non_trainable_variables]}
    batches = itertools.cycle(
        [jnp.asarray(b) for b in common.full_batches(images, args.batch_size)]
    )

    def step():
        views, state["non_trainable"] = step_fn(state["non_trainable"], next(batches))
        views.block_until_ready()

    return time_steps(step, args)


class ViewsDataset:
    """A map-style dataset of the two views of PIL images (for `torch.utils.data.DataLoader`)."""

    def __init__(self, images, transform, length):
        self.images, self.transform, self.length = images, transform, length

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        view_a, view_b = self.transform(self.images[index % len(self.images)])
        return view_a, view_b


def run_torch_modes(transform, images, args):
    """Times a PIL -> [view_a, view_b] transform `per_image` and in a `dataloader` (selected)."""
    import torch
    from PIL import Image

    pil_images = [Image.fromarray(image) for image in images]  # lightly's datasets yield PIL
    results = {}
    batches = itertools.cycle(common.full_batches(pil_images, args.batch_size))

    def step():
        for image in next(batches):
            views = transform(image)
        assert views[0].dtype == torch.float32

    if "per_image" in args.modes:
        results["per_image"] = time_steps(step, args)
    if "dataloader" not in args.modes:
        return results

    def make_iterator():
        length = (args.warmup_steps + args.steps) * args.batch_size
        loader = torch.utils.data.DataLoader(
            ViewsDataset(pil_images, transform, length),
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            shuffle=False,
            drop_last=True,
        )
        return iter(loader)

    try:
        results["dataloader"] = time_iterator(make_iterator, args)
    except Exception as error:  # noqa: BLE001 (e.g. no shared memory for the workers)
        results["dataloader"] = failed(error)
    results["dataloader"]["num_workers"] = args.num_workers
    return results

"""What a two-view model (`ContrastiveModel`, `MoCoModel`) takes as `x`, and
the checks of `fit`'s data against it (not public API).

With an augmenter, `x` is a batch of images and the model draws two views of
each; with `augmenter=None`, `x` is a ready pair `(view_a, view_b)`. In both,
`y` holds labels for the online probe, never a view. The general checks
(image range, labels, tf.data assertions) are `input_checks`'s.
"""

import numpy as np

from keras_simclr.augment.image_utils import check_image_range
from keras_simclr.models import input_checks

# Keras's batch size for arrays when `fit` is not given one.
KERAS_DEFAULT_BATCH_SIZE = 32


def pair_required(received):
    """The error for anything but a pair as `x` of a model without augmenter."""
    return ValueError(
        "With `augmenter=None`, ContrastiveModel takes a pair (view_a, view_b) "
        "as x. If your dataset yields (view_a, view_b), map it to "
        "((view_a, view_b),) or ((view_a, view_b), labels). "
        f"Received: {received}"
    )


def images_required(received):
    """The error for anything but images as `x` of a model with augmenter."""
    return ValueError(
        "ContrastiveModel has an augmenter, so x must be a batch of images; "
        f"to train on ready views pass augmenter=None. Received: {received}"
    )


def pair_read_as_x_y(augmenter, shapes):
    """The error for a dataset of `(view_a, view_b)`, which Keras reads as
    `(x, y)`."""
    if augmenter is None:
        advice = "map it to ((view_a, view_b),) or ((view_a, view_b), labels)"
    else:
        advice = (
            "this model has an augmenter and draws its own two views of x: "
            "give it the images alone, or pass augmenter=None and map the "
            "dataset to ((view_a, view_b),)"
        )
    return ValueError(
        "The dataset yields two image batches, which Keras reads as (x, y): "
        "the second view would be taken for labels. If it yields "
        f"(view_a, view_b), {advice}. Received: a dataset of elements with "
        f"shapes {shapes}"
    )


def array_views(augmenter, x, what):
    """`[(name, images)]` of array inputs; [] if x is not arrays (then the
    model's `build`/`call` say what is wrong with it)."""
    if augmenter is not None:
        return [(what, x)] if input_checks.is_array(x) else []
    if isinstance(x, (list, tuple)) and len(x) == 2 and all(input_checks.is_array(v) for v in x):
        return [("view_a", x[0]), ("view_b", x[1])]
    return []


class TwoViewInputChecks:
    """Checks of the data given to a two-view model's `fit` and `evaluate`.

    Args:
        augmenter: the model's augmenter, or None (x is a pair of views).
        num_classes: the probe's class count, or None (no probe: labels are
            not checked).
        too_small_batch: the error text for a batch of fewer than 2 images,
            with one `{}` placeholder: what was received.
    """

    def __init__(self, augmenter, num_classes, too_small_batch):
        self.augmenter = augmenter
        self.num_classes = num_classes
        self.too_small_batch = too_small_batch

    def validation_data(self, data):
        """Checks `fit`'s `validation_data`; returns it (a checked copy for a
        dataset)."""
        if input_checks.is_tf_dataset(data):
            return self.data(data, None, None, 0.0, training=False, what="validation x")
        if isinstance(data, (list, tuple)) and 1 <= len(data) <= 3:
            val_x, val_y = data[0], data[1] if len(data) > 1 else None
            self.data(val_x, val_y, None, 0.0, training=False, what="validation x")
        return data

    def data(self, x, y, batch_size, validation_split, training, what, drop_remainder=False):
        """Checks `x` (and `y`); returns `x`, a checked copy for a dataset."""
        if input_checks.is_tf_dataset(x):
            return self.dataset(x, training, what)
        views = array_views(self.augmenter, x, what)
        for name, images in views:
            check_image_range(images, name)
        if views and training:
            count = int(views[0][1].shape[0])
            if validation_split:
                # As Keras splits the arrays.
                count = int(np.floor(count * (1.0 - validation_split)))
            size = KERAS_DEFAULT_BATCH_SIZE if batch_size is None else int(batch_size)
            # A last batch of 1 is dropped with `drop_remainder` (unless it
            # is the only batch).
            dropped = drop_remainder and count > size
            if size < 2 or (count % size == 1 and not dropped):
                raise ValueError(
                    self.too_small_batch.format(
                        f"{count} training images with batch_size={size}, "
                        "which leaves a batch of 1 image"
                    )
                )
        if y is not None and self.num_classes is not None:
            input_checks.check_labels(y, self.num_classes, "y")
        return x

    def dataset(self, dataset, training, what):
        """Checks a `tf.data.Dataset` by its spec; returns it mapped through
        assertions where values must be read."""
        spec = dataset.element_spec
        if isinstance(spec, dict):
            return dataset
        x_spec, y_spec = input_checks.split_element(spec)
        y_shape = input_checks.spec_shape(y_spec)
        if y_shape is not None and len(y_shape) >= 3:
            raise pair_read_as_x_y(self.augmenter, input_checks.element_shapes(spec))
        augmented = self.augmenter is not None
        if augmented:
            names, view_specs = [what], [x_spec]
        else:
            names = ["view_a", "view_b"]
            view_specs = list(x_spec) if isinstance(x_spec, tuple) else []
        if len(view_specs) != len(names) or not all(input_checks.spec_shape(s) for s in view_specs):
            return dataset  # not images: `build` says what is wrong
        check_range = [input_checks.needs_range_check(s.dtype) for s in view_specs]
        batch = input_checks.spec_shape(view_specs[0])[0]
        if training and batch is not None and batch < 2:
            raise ValueError(
                self.too_small_batch.format(
                    f"a dataset of batches of shape {input_checks.element_shapes(spec)}"
                )
            )
        check_batch = training and batch is None
        num_classes = self.num_classes
        check_labels = num_classes is not None and y_spec is not None
        if not (any(check_range) or check_batch or check_labels):
            return dataset  # e.g. uint8 batches of a static size, no probe
        too_small = self.too_small_batch.format(
            "a batch of {} image(s) from the dataset (batch it with "
            "drop_remainder=True to drop a last partial batch)"
        )

        def assertions(element):
            x, y = input_checks.split_element(element)
            views = [x] if augmented else list(x)
            checks = [
                input_checks.image_range_assertion(images, name)
                for images, name, needed in zip(views, names, check_range)
                if needed
            ]
            if check_batch:
                checks.append(input_checks.batch_size_assertion(views[0], 2, too_small))
            if check_labels:
                checks.append(input_checks.label_range_assertion(y, num_classes, "y"))
            return checks

        return input_checks.map_checks(dataset, assertions)

"""Checks of the data given to `fit` and to the evaluations (not public API).

Keras compiles the training step (XLA on TensorFlow, `jax.jit` on JAX),
where value checks cannot run: XLA drops assertion ops, and a traced JAX
function cannot branch on values. So the data is checked where it enters,
while its values are concrete: NumPy arrays and eager tensors directly;
`tf.data` pipelines by their `element_spec` and, only where a value must be
read, by a light assertion mapped over the batches. That assertion runs in
tf.data, outside the compiled step; `raise_input_errors` turns its failure
back into the `ValueError` a NumPy input gets.

The range rule for images is `keras_simclr.augment.image_utils`'s
(`check_image_range`, `image_range_message`), next to `to_unit_float`.
TensorFlow is imported only when a `tf.data.Dataset` is given (it is then
imported already).
"""

import contextlib
import re
import sys

import keras
import numpy as np

from keras_simclr.augment.image_utils import check_image_range
from keras_simclr.augment.image_utils import image_range_message
from keras_simclr.augment.image_utils import image_value_range

# Framing of the messages of the tf.data assertions, found again in the
# error TensorFlow raises.
_BEGIN = "keras_simclr input check: "
_END = " :end of keras_simclr input check"
_FRAMED = re.compile(re.escape(_BEGIN) + "(.*?)" + re.escape(_END), re.DOTALL)

# How many distinct bad label values an error lists.
_SHOWN_VALUES = 10


def is_tf_dataset(data):
    """Whether `data` is a `tf.data.Dataset` (without importing TensorFlow)."""
    # A tf.data.Dataset can only exist if TensorFlow was imported already.
    tf = sys.modules.get("tensorflow")
    dataset_class = getattr(getattr(tf, "data", None), "Dataset", None)
    return dataset_class is not None and isinstance(data, dataset_class)


def is_array(data):
    """A NumPy array or eager tensor (anything with a shape and a dtype)."""
    return (
        hasattr(data, "shape")
        and hasattr(data, "dtype")
        and not isinstance(data, (list, tuple, dict))
        and not is_tf_dataset(data)
    )


def split_element(element):
    """`(x, y)` of a `fit` element: `(x,)`, `(x, y)`, `(x, y, w)` or `x`."""
    if isinstance(element, tuple) and 1 <= len(element) <= 3:
        return element[0], element[1] if len(element) > 1 else None
    return element, None


def spec_shape(spec):
    """The static shape of a `tf.TensorSpec` as a tuple, or None."""
    shape = getattr(spec, "shape", None)
    if shape is None or shape.rank is None:
        return None
    return tuple(shape.as_list())


def element_shapes(element_spec):
    """The element's structure with every spec replaced by its shape."""
    import tensorflow as tf

    return tf.nest.map_structure(spec_shape, element_spec)


# -- labels -------------------------------------------------------------------


def label_range_message(what, num_classes):
    """The error text for labels outside `[0, num_classes)`.

    One `{}` placeholder, the bad values (as `str.format` and
    `tf.strings.format` both fill it).
    """
    return (
        f"{what} must hold integer class indices in [0, {num_classes}) "
        f"(num_classes={num_classes}). Received: {what} values "
        f"{{}} outside [0, {num_classes}), num_classes={num_classes}"
    )


def check_labels(labels, num_classes, what="labels"):
    """Raises unless concrete `labels` are `(N,)` or `(N, 1)` class indices in
    `[0, num_classes)`; returns them as a NumPy `(N,)` array.

    Raises:
        ValueError: naming `what`, the bad values and `num_classes`.
    """
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or not (
        np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)
    ):
        raise ValueError(
            f"{what} must be integer class indices of shape (N,) or (N, 1). "
            f"Received: {what} of shape {labels.shape} and dtype {labels.dtype}"
        )
    # Written so that NaN counts as outside.
    outside = ~((labels >= 0) & (labels < num_classes))
    if np.issubdtype(labels.dtype, np.floating):
        outside |= labels != np.round(labels)
    if outside.any():
        bad = np.unique(labels[outside])[:_SHOWN_VALUES]
        # Written as tf.strings.format writes them in a tf.data check.
        shown = "[" + " ".join(str(v) for v in bad.tolist()) + "]"
        raise ValueError(label_range_message(what, num_classes).format(shown))
    return labels


# -- tf.data ------------------------------------------------------------------


def _assert(condition, message):
    """An assertion whose message `raise_input_errors` can find again."""
    import tensorflow as tf

    return tf.debugging.Assert(condition, [tf.strings.join([_BEGIN, message, _END])])


def needs_range_check(dtype):
    """Whether images of `dtype` (a `tf.DType` or name) need their values
    read: all but uint8."""
    return image_value_range(getattr(dtype, "name", dtype)) is not None


def image_range_assertion(images, what):
    """In a `tf.data` function: asserts `check_image_range`'s rule.

    Returns None for uint8 images (nothing to check).
    """
    import tensorflow as tf

    dtype = keras.backend.standardize_dtype(images.dtype.name)
    bounds = image_value_range(dtype)
    if bounds is None:
        return None
    low, high = tf.reduce_min(images), tf.reduce_max(images)
    valid = tf.logical_and(
        tf.cast(low, "float32") >= bounds[0], tf.cast(high, "float32") <= bounds[1]
    )
    message = tf.strings.format(
        image_range_message(what, dtype),
        (tf.cast(low, "float32"), tf.cast(high, "float32")),
    )
    return _assert(valid, message)


def label_range_assertion(labels, num_classes, what):
    """In a `tf.data` function: asserts `check_labels`'s range rule."""
    import tensorflow as tf

    labels = tf.reshape(labels, (-1,))
    inside = tf.logical_and(labels >= 0, labels < tf.cast(num_classes, labels.dtype))
    if labels.dtype.is_floating:
        inside = tf.logical_and(inside, tf.equal(labels, tf.round(labels)))
    bad = tf.sort(tf.unique(tf.boolean_mask(labels, tf.logical_not(inside)))[0])
    message = tf.strings.format(
        label_range_message(what, num_classes), (bad,), summarize=_SHOWN_VALUES
    )
    return _assert(tf.reduce_all(inside), message)


def batch_size_assertion(images, minimum, message):
    """In a `tf.data` function: asserts `len(images) >= minimum`.

    `message` holds one `{}` placeholder, the batch size.
    """
    import tensorflow as tf

    size = tf.shape(images)[0]
    return _assert(size >= minimum, tf.strings.format(message, (size,)))


def map_checks(dataset, assertions):
    """`dataset`, each element passed through once `assertions(element)`
    (a list of assertion ops, None entries skipped) hold.

    Runs in tf.data's threads (parallel, order kept), outside the compiled
    training step; the element structure and cardinality are unchanged.
    """
    import tensorflow as tf

    packed = isinstance(dataset.element_spec, tuple)

    def check(*args):
        element = args if packed else args[0]
        ops = [op for op in assertions(element) if op is not None]
        with tf.control_dependencies(ops):
            return tf.nest.map_structure(tf.identity, element)

    return dataset.map(check, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def checked_images(data, what, labels_num_classes=None, labels_what="labels"):
    """Checks the images (and optionally the labels) of `fit`-style data.

    `data` is an image array, an `(images, labels[, weights])` tuple of
    arrays or a `tf.data.Dataset` of `images` or `(images, labels[, ...])`
    batches. Arrays are checked now (`check_image_range`, `check_labels`
    when `labels_num_classes` is given); a dataset is returned mapped
    through the same checks where values must be read (non-uint8 images,
    labels), to be consumed inside `raise_input_errors()`. Anything else is
    returned unchanged.
    """
    if is_tf_dataset(data):
        spec = data.element_spec
        if isinstance(spec, dict):
            return data
        x_spec, y_spec = split_element(spec)
        shape = spec_shape(x_spec)
        check_range = shape is not None and needs_range_check(x_spec.dtype)
        check_labels = labels_num_classes is not None and y_spec is not None
        if not (check_range or check_labels):
            return data

        def assertions(element):
            images, labels = split_element(element)
            checks = [image_range_assertion(images, what) if check_range else None]
            if check_labels:
                checks.append(label_range_assertion(labels, labels_num_classes, labels_what))
            return checks

        return map_checks(data, assertions)
    images, labels = data, None
    if isinstance(data, (list, tuple)) and 1 <= len(data) <= 3:
        images, labels = data[0], data[1] if len(data) > 1 else None
    if is_array(images):
        check_image_range(images, what)
    if labels_num_classes is not None and labels is not None and is_array(labels):
        check_labels(labels, labels_num_classes, labels_what)
    return data


@contextlib.contextmanager
def raise_input_errors():
    """Turns a failed `tf.data` input assertion into its `ValueError`.

    TensorFlow reports a failed assertion as an `InvalidArgumentError` whose
    text holds the assertion's message; this re-raises that message as the
    `ValueError` the same input raises as NumPy arrays. Other errors pass
    unchanged.
    """
    try:
        yield
    except Exception as error:  # only ours are converted
        found = _FRAMED.search(str(error))
        if found is None:
            raise
        raise ValueError(found.group(1)) from None

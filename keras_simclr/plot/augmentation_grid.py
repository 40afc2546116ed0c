"""A grid of images and the two views an augmenter draws of each."""

import numbers

import numpy as np

from keras_simclr.plot.save_figure import InlineFigure
from keras_simclr.plot.save_figure import save_figure

# Inches per grid cell.
_CELL = 1.4


def _check_images(images):
    shape = getattr(images, "shape", None)
    if shape is None or len(shape) != 4 or shape[-1] != 3 or shape[0] < 1:
        raise ValueError(
            "augmentation_grid expects a batch of RGB images of shape "
            f"(batch, height, width, 3), batch >= 1. Received: images.shape={shape}"
        )
    images = np.asarray(images)
    if np.issubdtype(images.dtype, np.floating):
        low, high = float(images.min()), float(images.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(
                "augmentation_grid takes uint8 images or floats in [0, 1]. "
                f"Received: images with dtype={images.dtype}, min={low}, max={high}"
            )
    elif images.dtype != np.uint8:
        raise ValueError(
            "augmentation_grid takes uint8 images or floats in [0, 1]. "
            f"Received: images with dtype={images.dtype}"
        )
    return images


def _seed_states(augmenter):
    """The state variables of the augmenter's `keras.random.SeedGenerator`s."""
    return [v for v in augmenter.variables if v.path.endswith("seed_generator_state")]


def draw_views(images, augmenter, seed=0):
    """Two views of every image, drawn as `ContrastiveModel` draws them.

    One call `augmenter(concat([images, images]), training=True)`, split in
    two halves, as the model's training step does. The augmenter's random
    streams (its `SeedGenerator` states) are set from `seed` for the call
    and put back afterwards, so the views depend only on `seed` and a
    training run draws what it would have drawn without the picture.

    Args:
        images: uint8 `(N, H, W, 3)` images, or floats in [0, 1].
        augmenter: a layer drawing one random view per image (e.g.
            `keras_simclr.augment.SimCLRAugmentation`).
        seed: integer seed of the views.

    Returns:
        `(view_a, view_b)`, float32 NumPy arrays in [0, 1].
    """
    from keras import ops

    states = _seed_states(augmenter)
    saved = [np.array(ops.convert_to_numpy(state)) for state in states]
    for index, state in enumerate(states):
        state.assign(np.array([seed + index, 0]).astype(state.dtype))
    try:
        views = augmenter(ops.concatenate([images, images], axis=0), training=True)
    finally:
        for state, value in zip(states, saved):
            state.assign(value)
    views = np.clip(ops.convert_to_numpy(ops.cast(views, "float32")), 0.0, 1.0)
    return views[: len(images)], views[len(images) :]


def augmentation_grid(images, augmenter, num_images=8, seed=0):
    """A figure of images beside two random views of each.

    Three rows, one column per image: the images, then view a and view b
    of each, drawn by
    `augmenter` in training mode exactly as `ContrastiveModel` draws its two
    views (see `draw_views`). Pass the run's own augmenter
    (`recipe.augmenter`, `model.augmenter`) to see what the model is trained
    to match: two crops of one image, differently colored, are a positive
    pair.

    Args:
        images: uint8 `(N, H, W, 3)` images, or floats in [0, 1] (a NumPy
            array or a tensor); the first `num_images` are drawn.
        augmenter: a layer drawing one random view per image, called with
            `training=True`.
        num_images: rows of the grid, >= 1 (fewer if `images` has fewer).
        seed: integer seed of the views; the augmenter's own random streams
            are left as they were.

    Returns:
        a `matplotlib.figure.Figure` (shown inline in Jupyter).

    Raises:
        ValueError: `images` not a batch of RGB images, floats outside
            [0, 1], or `num_images` < 1, naming what was received.

    Example:

    ```python
    recipe = keras_simclr.recipes.simclr(image_size=32, batch_size=256, epochs=100,
                                         train_examples=50000)
    keras_simclr.plot.augmentation_grid(uint8_images[:8], recipe.augmenter)
    ```
    """
    if (
        not isinstance(num_images, numbers.Integral)
        or isinstance(num_images, bool)
        or num_images < 1
    ):
        raise ValueError(f"num_images must be an integer >= 1. Received: num_images={num_images}")
    from keras import ops

    images = _check_images(ops.convert_to_numpy(images)[: int(num_images)])
    view_a, view_b = draw_views(images, augmenter, seed=seed)
    columns = len(images)
    figure = InlineFigure(figsize=(columns * _CELL + 0.4, 3 * _CELL), layout="constrained")
    axes = figure.subplots(3, columns, squeeze=False)
    for row, (title, pictures) in enumerate(
        (("image", images), ("view a", view_a), ("view b", view_b))
    ):
        for column in range(columns):
            axis = axes[row, column]
            axis.imshow(pictures[column], interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            axis.spines[:].set_visible(False)
        axes[row, 0].set_ylabel(title)
    return figure


def save_augmentations(path, images, augmenter, num_images=8, seed=0, dpi=100):
    """Writes `augmentation_grid(images, augmenter, ...)` as a PNG, atomically.

    Args:
        path: the PNG's path (e.g. `OUTPUT_DIR/augmentations.png`).
        images, augmenter, num_images, seed: as in `augmentation_grid`.
        dpi: dots per inch of the PNG.

    Returns:
        `path`.

    Raises:
        ValueError: as `augmentation_grid`.

    Example:

    ```python
    save_augmentations("runs/augmentations.png", uint8_images[:8], recipe.augmenter)
    ```
    """
    figure = augmentation_grid(images, augmenter, num_images=num_images, seed=seed)
    return save_figure(figure, path, dpi=dpi)

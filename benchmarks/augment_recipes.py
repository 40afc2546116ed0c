"""The SimCLR two-view augmentation as each library builds it: ours, keras-cv 0.9, torchvision.

One recipe (random resized crop area 0.08-1 and flip, color jitter p=0.8 at strength s, grayscale
p=0.2, blur p=0.5 in the imagenet preset only) in three libraries, for `augment_throughput`.
A reference that cannot be imported raises `NotInstalled`.
"""

import importlib

# Per preset: SimCLR color strength s and blur probability (None: no blur),
# as in keras_simclr.augment.simclr_augmentation.PRESETS.
RECIPES = {
    "cifar": {"strength": 0.5, "blur": None},
    "imagenet": {"strength": 1.0, "blur": 0.5},
}
SCALE = (0.08, 1.0)
ASPECT_RATIO = (3 / 4, 4 / 3)
SIGMA = (0.1, 2.0)


class NotInstalled(Exception):
    """A reference library cannot be imported."""


def ours_layer(preset, image_size, seed=0):
    import keras_simclr as ks

    return ks.augment.SimCLRAugmentation(image_size, preset=preset, seed=seed)


def make_two_views(layer):
    """x (N, H, W, 3) -> the (2N, size, size, 3) float32 views, as `ContrastiveModel` makes them:

    one call of the augmenter on the batch concatenated with itself (every
    random choice is drawn per image, so the two copies get independent
    views); view a of every image first.
    """
    from keras import ops

    def two_views(images):
        return layer(ops.concatenate([images, images], axis=0), training=True)

    return two_views


def keras_cv_augmenter(preset, image_size, seed=0):
    """Our recipe from keras-cv 0.9 layers: float32 [0, 255] images -> float32 [0, 1] views.

    keras-cv's factors converted to SimCLR's strength s: brightness additive (SimCLR v1's; ours
    multiplies, same cost) with factor 0.8 s; contrast in [1 - 0.8 s, 1 + 0.8 s]; saturation
    `f = m / (1 + m)` at the ends m of that range (keras-cv scales by `f / (1 - f)`); hue
    `_hue_factor`. Its jitter runs in a fixed order (ours draws the order per image, which costs
    ours more); the blur kernel is odd, about 10% of the side.
    """
    try:
        import keras_cv
    except Exception as error:  # noqa: BLE001 (anything that stops the import)
        raise NotInstalled(f"{type(error).__name__}: {error}") from error
    import keras

    s = RECIPES[preset]["strength"]
    low, high = max(0.0, 1.0 - 0.8 * s), 1.0 + 0.8 * s
    layers = keras_cv.layers
    steps = [
        layers.RandomCropAndResize(
            target_size=(image_size, image_size),
            crop_area_factor=SCALE,
            aspect_ratio_factor=ASPECT_RATIO,
            seed=seed,
        ),
        layers.RandomFlip("horizontal", seed=seed + 1),
        layers.RandomApply(
            layers.RandomColorJitter(
                value_range=(0, 255),
                brightness_factor=0.8 * s,
                contrast_factor=0.8 * s,
                saturation_factor=(low / (1 + low), high / (1 + high)),
                hue_factor=_hue_factor(0.2 * s),
                seed=seed + 2,
            ),
            rate=0.8,
            seed=seed + 3,
        ),
        layers.RandomApply(layers.Grayscale(output_channels=3), rate=0.2, seed=seed + 4),
    ]
    if RECIPES[preset]["blur"]:
        kernel = max(3, int(0.1 * image_size) // 2 * 2 + 1)  # odd, about 10% of the side
        steps.append(
            layers.RandomApply(
                layers.RandomGaussianBlur(kernel_size=kernel, factor=SIGMA, seed=seed + 5),
                rate=RECIPES[preset]["blur"],
                seed=seed + 6,
            )
        )
    pipeline = keras.Sequential(steps)

    def augment(images):
        import tensorflow as tf

        return pipeline(tf.cast(images, "float32"), training=True) / 255.0

    return augment


def _hue_factor(max_shift):
    """keras-cv's RandomHue factor for a hue shift of up to `max_shift` turns."""
    return 2.0 * max_shift


def torchvision_transform(preset, image_size):
    """SimCLR's two-view transform as lightly builds it: PIL image -> [view_a, view_b].

    Returns `(transform, description)`. Views are float32 (3, size, size) in
    [0, 1] (no normalization, as ours).
    """
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except Exception as error:  # noqa: BLE001
        raise NotInstalled(f"{type(error).__name__}: {error}") from error
    s, blur = RECIPES[preset]["strength"], RECIPES[preset]["blur"] or 0.0
    try:
        from lightly.transforms import SimCLRTransform
    except Exception as error:  # noqa: BLE001 (fall back to the same torchvision composition)
        lightly_error = f"{type(error).__name__}: {error}"
    else:
        transform = SimCLRTransform(
            input_size=image_size,
            cj_prob=0.8,
            cj_strength=s,
            min_scale=SCALE[0],
            random_gray_scale=0.2,
            gaussian_blur=blur,
            sigmas=SIGMA,
            vf_prob=0.0,
            hf_prob=0.5,
            rr_prob=0.0,
            normalize=None,
        )
        return transform, "lightly.transforms.SimCLRTransform(normalize=None)"

    import torchvision.transforms as T

    view = T.Compose(
        [
            T.RandomResizedCrop(image_size, scale=SCALE, ratio=ASPECT_RATIO),
            T.RandomHorizontalFlip(0.5),
            T.RandomApply([T.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=0.8),
            T.RandomGrayscale(0.2),
            T.RandomApply(
                [T.GaussianBlur(max(3, int(0.1 * image_size) // 2 * 2 + 1), SIGMA)], p=blur
            ),
            T.ToTensor(),
        ]
    )
    return (
        lambda image: [view(image), view(image)],
        f"torchvision.transforms.Compose equivalent to lightly's SimCLRTransform "
        f"(lightly not importable: {lightly_error})",
    )


def import_torch_first():
    """Imports torch, torchvision and lightly before anything imports TensorFlow.

    With TensorFlow loaded first, importing `torchvision.ops` (which lightly
    does) segfaults in triton's import (seen with torch 2.14, torchvision
    0.29, TensorFlow 2.21); in the other order both work. The decode step
    already imports keras (and so TensorFlow). Import errors are left for
    `torchvision_transform` to report.
    """
    for name in ("torch", "torchvision", "torchvision.ops", "lightly.transforms"):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001, S110 (reported by torchvision_transform)
            pass

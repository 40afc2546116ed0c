"""Per-image random, backend-agnostic augmentation layers and the SimCLR presets."""

from keras_simclr.augment.random_color_distortion import RandomColorDistortion
from keras_simclr.augment.random_gaussian_blur import RandomGaussianBlur
from keras_simclr.augment.random_resized_crop import RandomResizedCrop
from keras_simclr.augment.simclr_augmentation import SimCLRAugmentation

__all__ = [
    "RandomColorDistortion",
    "RandomGaussianBlur",
    "RandomResizedCrop",
    "SimCLRAugmentation",
]

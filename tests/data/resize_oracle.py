"""A NumPy re-derivation of bilinear, antialiased resizing (the loaders' resize)."""

import numpy as np


def _weights(size_in, size_out):
    """(size_out, size_in) interpolation weights: a triangle kernel of
    half-width max(1, size_in / size_out) input pixels around each output
    pixel's centre, clipped to the image and normalised to sum to one."""
    scale = size_out / size_in
    width = max(1.0, 1.0 / scale)
    centres = (np.arange(size_out) + 0.5) / scale - 0.5
    weights = np.maximum(0.0, 1.0 - np.abs(np.arange(size_in)[None, :] - centres[:, None]) / width)
    return weights / weights.sum(axis=1, keepdims=True)


def resize(image, size):
    """Resizes one (h, w, c) image to `size` = (H, W); returns rounded uint8."""
    height, width = size
    rows = _weights(image.shape[0], height)
    cols = _weights(image.shape[1], width)
    # Rows, then columns: two small contractions (one three-way einsum
    # without a contraction order loops over every index at once).
    out = np.einsum("ai,ijc->ajc", rows, image.astype(np.float64))
    out = np.einsum("ajc,bj->abc", out, cols)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)

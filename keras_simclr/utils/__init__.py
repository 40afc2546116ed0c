"""Internal helpers shared across keras_simclr's packages.

Not part of the public API: names here may change or move without notice.
`validation` checks constructor arguments (numbers, temperatures);
`tensors` holds small `keras.ops` helpers (L2 normalization, static shapes).
Import the modules directly, e.g.
`from keras_simclr.utils.validation import validate_temperature`.
"""

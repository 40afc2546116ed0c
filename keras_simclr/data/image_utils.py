"""Temporary: the old name of this module, for callers still moving over.

To be deleted with issue 16: use `keras_simclr.data.resizing` instead.
"""

from keras_simclr.data.resizing import resize_image  # noqa: F401

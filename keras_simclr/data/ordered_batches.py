"""`OrderedBatches`: every example of in-memory arrays once, in order, in batches."""

import keras
import numpy as np

from keras_simclr.data.image_dataset import check_batch_size


class OrderedBatches(keras.utils.PyDataset):
    """`(images, labels)` NumPy batches of every example, in order.

    What `ArrayImageDataset.evaluation_batches` returns: `ceil(N /
    batch_size)` batches, the last one holding the remainder; every pass
    (`iter()`, or `model.predict`) gives the same batches. `extract_features`,
    `evaluate_knn` and `KNNMonitor` take it like any iterable of batches.

    Args:
        images: uint8 array `(N, H, W, 3)`.
        labels: `(N,)` labels.
        batch_size: batch size (may exceed `N`).
        **kwargs: `workers`, `use_multiprocessing`, `max_queue_size` of
            `keras.utils.PyDataset`.

    Example:

    ```python
    test = load_image_folder("/data/cifar10", "test", in_memory=True)
    features, labels = extract_features(encoder, OrderedBatches(test.images, test.labels, 512))
    ```
    """

    def __init__(self, images, labels, batch_size, **kwargs):
        super().__init__(**kwargs)
        images, labels = np.asarray(images), np.asarray(labels)
        if labels.shape[:1] != images.shape[:1]:
            raise ValueError(
                f"labels must have one entry per image ({len(images)}). "
                f"Received: labels.shape={labels.shape}"
            )
        self.images = images
        self.labels = labels
        self.batch_size = check_batch_size(batch_size)

    def __len__(self):
        return (len(self.images) + self.batch_size - 1) // self.batch_size

    def __getitem__(self, index):
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"Batch index out of range [0, {len(self)}). Received: index={index}")
        chosen = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.images[chosen], self.labels[chosen]

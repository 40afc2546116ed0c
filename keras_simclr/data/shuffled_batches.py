"""`ShuffledBatches`: shuffled, full uint8 batches of in-memory images, for `model.fit`."""

import threading

import keras
import numpy as np

from keras_simclr.data.image_dataset import check_batch_size


class ShuffledBatches(keras.utils.PyDataset):
    """Shuffled, full uint8 batches of in-memory images, for `model.fit`.

    What `ArrayImageDataset.training_batches` returns: every epoch is a new
    permutation of the examples, cut into `num_examples // batch_size` full
    batches (the remainder is dropped, so every batch has the same shape and
    a compiled step never recompiles). Epoch `e`'s order depends only on
    `(seed, e)`: the same seed gives the same sequence of orders, and a run
    resumed at `initial_epoch` sees the orders an uninterrupted run would.
    Batches are gathered from the array on demand (one copy of a batch, no
    decoding); with `workers > 1` Keras prepares them ahead in threads.
    Augmentation belongs in the model (e.g. `ContrastiveModel`'s augmenter),
    which receives the uint8 batch on the device.

    Args:
        images: uint8 array `(N, H, W, 3)`.
        labels: optional `(N,)` labels, yielded beside the images (for an
            online probe); `None`: batches are `(images,)`.
        batch_size: batch size, at most `N`.
        seed: shuffle seed; `None`: a random one.
        initial_epoch: the epoch the first `fit` epoch is (its order).
        repeat: `False`: one epoch per `fit` epoch (`len()` batches, the
            epoch advancing at each epoch's end); `True`: an endless stream
            of epochs (give `fit` a `steps_per_epoch`).
        **kwargs: `workers`, `use_multiprocessing`, `max_queue_size` of
            `keras.utils.PyDataset`.

    Example:

    ```python
    train = load_image_folder("/data/cifar10", "train", in_memory=True)
    batches = ShuffledBatches(train.images, train.labels, batch_size=512, seed=0)
    model.fit(batches, epochs=800, shuffle=False)
    ```
    """

    def __init__(
        self,
        images,
        labels=None,
        batch_size=256,
        seed=None,
        initial_epoch=0,
        repeat=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                "images must be a (N, height, width, 3) array. "
                f"Received: images.shape={images.shape}, dtype={images.dtype}"
            )
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape[:1] != images.shape[:1]:
                raise ValueError(
                    f"labels must have one entry per image ({len(images)}). "
                    f"Received: labels.shape={labels.shape}"
                )
        self.images = images
        self.labels = labels
        self.batch_size = check_batch_size(batch_size, len(images))
        self.seed = int(np.random.SeedSequence().entropy if seed is None else seed)
        self.epoch = int(initial_epoch)
        self.repeat = bool(repeat)
        self.batches_per_epoch = len(images) // self.batch_size
        self._orders = {}
        self._lock = threading.Lock()

    def epoch_order(self, epoch):
        """The permutation of the examples in epoch `epoch`."""
        with self._lock:
            order = self._orders.get(epoch)
            if order is None:
                rng = np.random.default_rng([self.seed, int(epoch)])
                order = rng.permutation(len(self.images))
                # Keep this epoch and the next few (enqueuers may run ahead).
                self._orders = {e: o for e, o in self._orders.items() if e > epoch - 2}
                self._orders[epoch] = order
            return order

    @property
    def num_batches(self):
        return None if self.repeat else self.batches_per_epoch

    def __len__(self):
        return self.batches_per_epoch

    def __getitem__(self, index):
        index = int(index)
        if index < 0 or (not self.repeat and index >= self.batches_per_epoch):
            raise IndexError(
                f"Batch index out of range [0, {self.batches_per_epoch}). Received: index={index}"
            )
        epoch = self.epoch + index // self.batches_per_epoch
        start = (index % self.batches_per_epoch) * self.batch_size
        chosen = self.epoch_order(epoch)[start : start + self.batch_size]
        images = self.images[chosen]
        if self.labels is None:
            return (images,)
        return images, self.labels[chosen]

    def on_epoch_end(self):
        if not self.repeat:
            self.epoch += 1

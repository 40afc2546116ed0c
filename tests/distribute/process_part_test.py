"""process_part: each JAX process's rows of every global batch."""


def test_process_part_slices_every_global_batch_and_forwards_the_epoch():
    import numpy as np

    from keras_simclr import data
    from keras_simclr.distribute import process_part

    images = np.arange(12 * 2 * 2 * 3, dtype="uint8").reshape(12, 2, 2, 3)
    labels = np.arange(12)
    batches = data.load_arrays(images, labels).training_batches(4, seed=0)
    parts = [process_part(batches, index, 2) for index in range(2)]
    parts[1].epoch = 3
    assert batches.epoch == 3 and parts[0].epoch == 3 and len(parts[0]) == 3
    for step in range(3):
        whole = batches[step]
        halves = [part[step] for part in parts]
        np.testing.assert_array_equal(np.concatenate([h[1] for h in halves]), whole[1])
        np.testing.assert_array_equal(np.concatenate([h[0] for h in halves]), whole[0])
    parts[0].on_epoch_end()
    assert batches.epoch == 4
    assert process_part(batches, 0, 1) is batches

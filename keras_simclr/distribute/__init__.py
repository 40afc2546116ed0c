"""Distribution: strategy resolution and cross-replica helpers.

The only package that touches `tf.distribute` (imported lazily, so the
package imports on JAX without TensorFlow).
"""

from keras_simclr.distribute.cross_replica import cross_replica_concat
from keras_simclr.distribute.cross_replica import num_replicas_in_sync
from keras_simclr.distribute.cross_replica import scale_loss_for_replicas
from keras_simclr.distribute.keras_workarounds import fix_symbolic_build
from keras_simclr.distribute.one_device import OneDevice
from keras_simclr.distribute.process_part import process_part
from keras_simclr.distribute.strategy import check_global_batch
from keras_simclr.distribute.strategy import no_distribution
from keras_simclr.distribute.strategy import replicas_of
from keras_simclr.distribute.strategy import resolve_strategy
from keras_simclr.distribute.strategy import same_on_every_worker
from keras_simclr.distribute.worker_role import WorkerRole
from keras_simclr.distribute.worker_role import worker_role

__all__ = [
    "check_global_batch",
    "cross_replica_concat",
    "fix_symbolic_build",
    "no_distribution",
    "num_replicas_in_sync",
    "OneDevice",
    "process_part",
    "replicas_of",
    "resolve_strategy",
    "same_on_every_worker",
    "scale_loss_for_replicas",
    "worker_role",
    "WorkerRole",
]

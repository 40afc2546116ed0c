"""Models: the ResNet encoder, any Keras backbone as an encoder, the projection
head and the contrastive models.

Importing it registers every keras-simclr class a saved model can hold (the
models, their layers and augmentation, and the LARS optimizer), so
`import keras_simclr.models` before `keras.saving.load_model` reloads any
`.keras` file the library wrote.
"""

# A compiled model's file names its optimizer: LARS must be registered too.
from keras_simclr import optimizers  # noqa: F401
from keras_simclr.models.backbone_encoder import pooled_encoder
from keras_simclr.models.backbone_encoder import synchronize_batchnorm
from keras_simclr.models.contrastive_model import ContrastiveModel
from keras_simclr.models.distillation_model import DistillationModel
from keras_simclr.models.encoders import ENCODERS
from keras_simclr.models.encoders import check_encoder
from keras_simclr.models.encoders import create_encoder
from keras_simclr.models.input_scaling import InputScaling
from keras_simclr.models.moco_model import MoCoModel
from keras_simclr.models.projection_head import ProjectionHead
from keras_simclr.models.resnet import ResNet
from keras_simclr.models.resolve_encoder import resolve_encoder

__all__ = [
    "ENCODERS",
    "ContrastiveModel",
    "DistillationModel",
    "InputScaling",
    "MoCoModel",
    "ProjectionHead",
    "ResNet",
    "check_encoder",
    "create_encoder",
    "pooled_encoder",
    "resolve_encoder",
    "synchronize_batchnorm",
]

"""seqvision: video and skeleton action recognition with Keras 3 on TensorFlow."""

__version__ = "0.1.0"

"""tfft: fine-tune BERT-family encoders on NLP tasks with Keras 3 and TensorFlow."""

__version__ = "0.1.0"

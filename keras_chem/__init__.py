"""keras-chem: structure-to-property learning for molecules and crystals with Keras 3.

Importing this package is cheap and never imports Keras, TensorFlow or JAX; the
functions below import them on first use.
"""

__version__ = "0.1.0"

__all__ = ["load_model", "predict", "__version__"]


def __getattr__(name):
    if name == "load_model":
        from keras_chem.models.saving import load_model

        return load_model
    if name == "predict":
        from keras_chem.inference import predict

        return predict
    raise AttributeError(f"module 'keras_chem' has no attribute {name!r}")

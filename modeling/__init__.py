"""Modeling: image loading, the two architectures, training, evaluation, prediction.

Keras runs on the JAX backend; it is selected here, before anything imports keras,
so no user has to set ``KERAS_BACKEND``.
"""

import os

os.environ["KERAS_BACKEND"] = "jax"

"""The two architectures. Both take raw RGB pixels (0-255) and end in the same head:
``pool`` (global average) -> ``dropout`` -> ``brand`` (softmax over the brand set),
so a round can swap the head when brands are added.

* ``cnn``: a compact residual CNN trained from scratch, sized for CPU training.
* ``inception``: InceptionV3 with ImageNet weights, a new head over the pooled
  ``mixed5`` to ``mixed10`` blocks (the lower blocks carry texture and colour, which
  cross-validation inside the demo's training photos put 3 points ahead of pooling
  ``mixed8`` and ``mixed10`` alone), and fine-tuning of the top blocks (``mixed9``,
  ``mixed10``). Everything up to ``mixed8`` stays frozen, which is what lets training
  run from cached activations (:mod:`modeling.feature_cache`).
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import keras
import numpy as np
from keras import layers

import modeling  # noqa: F401  (selects the JAX backend)
from modeling.feature_cache import INCEPTION_CUT, LOW_BLOCKS, LOW_FEATURES
from modeling.layers import PackPooled, RandomAffine, UnpackPooled
from shoelabel.errors import UserError
from shoelabel.settings import IMAGENET

CNN_INPUT_SIZE = 128
INCEPTION_INPUT_SIZE = 299
INCEPTION_TOP = "mixed10"


class WeightsError(UserError, RuntimeError):
    """The InceptionV3 ImageNet weights cannot be loaded."""


#: Scale factors of the random zoom: below 1 puts a smaller shoe in a bigger frame (a phone photo, a
#: studio shot with a wide margin), above 1 is a random crop of the shoe. Translation moves it around.
ZOOM = (0.55, 1.3)
TRANSLATION = 0.15


def augmentation(
    seed: int | None = None, zoom: tuple[float, float] = ZOOM, translation: float = TRANSLATION
) -> keras.Sequential:
    """Geometric (flip, rotation, zoom in and out, shift: one resampling) and photometric augmentation,
    active only while training. Inputs are scaled to [0, 1]."""
    return keras.Sequential(
        [
            RandomAffine(rotation=0.06, zoom=zoom, translation=translation, seed=seed),
            layers.RandomBrightness(0.2, value_range=(0.0, 1.0), seed=seed),
            layers.RandomContrast(0.25, value_range=(0.0, 1.0), seed=seed),
        ],
        name="augment",
    )


def _head(x: keras.KerasTensor, n_classes: int, dropout: float) -> keras.KerasTensor:
    x = layers.Dropout(dropout, name="dropout")(x)
    return layers.Dense(n_classes, activation="softmax", name="brand")(x)


def _conv_bn(x: keras.KerasTensor, filters: int, stride: int = 1, name: str = "") -> keras.KerasTensor:
    x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _residual_stage(x: keras.KerasTensor, filters: int, name: str) -> keras.KerasTensor:
    """Two 3x3 convolutions with a projected shortcut, then 2x downsampling."""
    shortcut = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_proj")(x)
    shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    x = _conv_bn(x, filters, name=f"{name}_a")
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_b_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_b_bn")(x)
    x = layers.Activation("relu", name=f"{name}_out")(layers.Add(name=f"{name}_add")([x, shortcut]))
    return layers.MaxPooling2D(2, name=f"{name}_pool")(x)


def build_cnn(
    n_classes: int,
    input_size: int = CNN_INPUT_SIZE,
    widths: tuple[int, ...] = (32, 64, 128, 256),
    dropout: float = 0.4,
    seed: int | None = None,
) -> keras.Model:
    inputs = keras.Input((input_size, input_size, 3), name="pixels")
    x = layers.Rescaling(1.0 / 255.0, name="scale")(inputs)
    x = augmentation(seed)(x)
    x = _conv_bn(x, widths[0], stride=2, name="stem")
    x = layers.MaxPooling2D(2, name="stem_pool")(x)  # 4x smaller maps early: CPU-sized compute
    for i, width in enumerate(widths[1:], start=1):
        x = _residual_stage(x, width, name=f"stage{i}")
    x = _conv_bn(x, widths[-1] * 2, name="final")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, _head(x, n_classes, dropout), name="cnn")


@cache
def weights_id(source: str) -> str:
    """A short, stable name for a weights source, used to key cached activations."""
    if source == IMAGENET:
        return IMAGENET
    digest = hashlib.md5()
    with open(source, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return f"md5-{digest.hexdigest()[:12]}"


def inception_base(
    weights: str | None, input_size: int = INCEPTION_INPUT_SIZE, input_tensor: keras.KerasTensor | None = None
) -> keras.Model:
    """InceptionV3 without its classifier. ``weights``: ``"imagenet"``, an ``.h5`` path, or None."""
    try:
        return keras.applications.InceptionV3(
            include_top=False,
            weights=weights,
            input_shape=(input_size, input_size, 3),
            input_tensor=input_tensor,
        )
    except Exception as exc:
        if weights == IMAGENET:
            raise WeightsError(
                "Could not get the InceptionV3 ImageNet weights (Keras downloads them once and "
                f"needs network access for that): {exc}. On a machine without network access, set "
                "SHOELABEL_INCEPTION_WEIGHTS to the path of inception_v3_imagenet_notop.h5."
            ) from exc
        if weights is not None:
            raise WeightsError(
                f"Could not load InceptionV3 weights from {weights}: {exc}. The file must be the "
                "Keras 'notop' InceptionV3 weights (.h5); check SHOELABEL_INCEPTION_WEIGHTS."
            ) from exc
        raise


def build_inception(
    n_classes: int,
    weights: str | None,
    input_size: int = INCEPTION_INPUT_SIZE,
    dropout: float = 0.3,
) -> keras.Model:
    """InceptionV3 with a new head over the pooled outputs of ``mixed5`` to ``mixed10``."""
    if isinstance(weights, str) and weights != IMAGENET and not Path(weights).is_file():
        raise WeightsError(
            f"InceptionV3 weights file not found: {weights}. Set SHOELABEL_INCEPTION_WEIGHTS to the "
            "path of inception_v3_imagenet_notop.h5, or to 'imagenet'."
        )
    inputs = keras.Input((input_size, input_size, 3), name="pixels")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(inputs)
    base = inception_base(weights, input_size, input_tensor=x)
    pooled = layers.Concatenate(name="pool")(
        [
            _low_pooled(base, "pool_low"),
            layers.GlobalAveragePooling2D(name="pool_cut")(base.get_layer(INCEPTION_CUT).output),
            layers.GlobalAveragePooling2D(name="pool_mixed9")(base.get_layer("mixed9").output),
            layers.GlobalAveragePooling2D(name="pool_top")(base.get_layer(INCEPTION_TOP).output),
        ]
    )
    return keras.Model(inputs, _head(pooled, n_classes, dropout), name="inception")


def _low_pooled(model: keras.Model, name: str | None = None) -> keras.KerasTensor:
    """The pooled outputs of the blocks below the cut, side by side (frozen: computed once per photo)."""
    pooled = [layers.GlobalAveragePooling2D()(model.get_layer(block).output) for block in LOW_BLOCKS]
    return layers.Concatenate(name=name)(pooled)


def _has_low(model: keras.Model) -> bool:
    """Models saved before the head saw ``mixed5``-``mixed7`` pool ``mixed8`` and ``mixed10`` only."""
    return any(layer.name == "pool_low" for layer in model.layers)


def _from_cut(model: keras.Model, output: keras.KerasTensor) -> keras.Model:
    """A network from the lower part's packed output (see :func:`split_inception`) to ``output``."""
    cut = model.get_layer(INCEPTION_CUT).output
    packed = keras.Input(PackPooled().compute_output_shape([cut.shape, (None, LOW_FEATURES)])[1:], name="cut")
    maps, low = UnpackPooled(int(cut.shape[-1]), LOW_FEATURES)(packed)
    if _has_low(model):
        core = keras.Model([cut, model.get_layer("pool_low").output], output)
        return keras.Model(packed, core([maps, low]))
    return keras.Model(packed, keras.Model(cut, output)(maps))


def split_inception(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """(lower, upper): pixels -> what the frozen part computes, and that -> probabilities.

    The frozen part's output is one array per photo: the ``mixed8`` maps with the pooled ``mixed5``-
    ``mixed7`` outputs packed in as extra channels (:class:`~modeling.layers.PackPooled`); that is what
    the activation cache stores and the upper part, the one fine-tuning trains, reads."""
    cut = model.get_layer(INCEPTION_CUT).output
    low = model.get_layer("pool_low").output if _has_low(model) else _low_pooled(model)
    lower = keras.Model(model.input, PackPooled()([cut, low]), name="inception_lower")
    return lower, _from_cut(model, model.output)


def inception_pooled(model: keras.Model) -> keras.Model:
    """The lower part's output -> the pooled features the head sees (``pool`` layer)."""
    return _from_cut(model, model.get_layer("pool").output)


def inception_top(model: keras.Model) -> keras.Model:
    """The lower part's output -> the last block's maps (for class activation maps)."""
    return _from_cut(model, model.get_layer(INCEPTION_TOP).output)


def cam_kernels(model: keras.Model) -> tuple[np.ndarray, np.ndarray]:
    """The head's kernel rows for the pooled ``mixed8`` and ``mixed10`` maps (the blocks a class
    activation map is drawn from), in a model of either pooling layout."""
    kernel = np.asarray(model.get_layer("brand").kernel, dtype=np.float32)
    cut = int(model.get_layer(INCEPTION_CUT).output.shape[-1])
    start = LOW_FEATURES if _has_low(model) else 0
    top = int(model.get_layer(INCEPTION_TOP).output.shape[-1])
    return kernel[start : start + cut], kernel[len(kernel) - top :]


def set_frozen_below_cut(model: keras.Model) -> None:
    """Freeze the lower network; in the top blocks train convolutions, keep batch norm statistics."""
    names = [layer.name for layer in model.layers]
    cut_index = names.index(INCEPTION_CUT)
    for index, layer in enumerate(model.layers):
        if index <= cut_index:
            layer.trainable = False
        else:
            layer.trainable = not isinstance(layer, layers.BatchNormalization)


def replace_head(model: keras.Model, class_names: list[str], old_class_names: list[str]) -> keras.Model:
    """The same network with a head for ``class_names``; rows of known brands keep their weights."""
    pooled = model.get_layer("pool").output
    dropout = model.get_layer("dropout").rate
    new_model = keras.Model(model.input, _head(pooled, len(class_names), dropout), name=model.name)
    old_kernel, old_bias = model.get_layer("brand").get_weights()
    kernel, bias = new_model.get_layer("brand").get_weights()
    for j, name in enumerate(class_names):
        if name in old_class_names:
            i = old_class_names.index(name)
            kernel[:, j], bias[j] = old_kernel[:, i], old_bias[i]
    new_model.get_layer("brand").set_weights([kernel, bias])
    return new_model

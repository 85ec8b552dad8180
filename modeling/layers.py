"""Custom layers (registered, so saved models load anywhere)."""

from __future__ import annotations

import math

import keras
from keras import KerasTensor, ops

import modeling  # noqa: F401  (selects the JAX backend)


@keras.saving.register_keras_serializable(package="shoelabel")
class RandomAffine(keras.layers.Layer):
    """Random horizontal flip, rotation, zoom and shift as a single affine resampling.

    Keras' separate RandomFlip/RandomRotation/RandomZoom/RandomTranslation layers
    resample the image once each; composing them into one transform gives the same
    augmentation at a third of the cost, which matters when training on a CPU.
    Active only while training.
    """

    def __init__(
        self,
        rotation: float = 0.06,  # fraction of a full turn, either way
        zoom: tuple[float, float] = (0.8, 1.15),  # scale factors; > 1 zooms in
        translation: float = 0.08,  # fraction of the side, either way
        flip: bool = True,
        fill_mode: str = "nearest",
        seed: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.rotation, self.zoom, self.translation, self.flip = rotation, tuple(zoom), translation, flip
        self.fill_mode, self.seed = fill_mode, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images: KerasTensor, training: bool = False) -> KerasTensor:
        if not training:
            return images
        batch = ops.shape(images)[0]
        height, width = ops.cast(ops.shape(images)[1], "float32"), ops.cast(ops.shape(images)[2], "float32")

        def uniform(low: float, high: float) -> KerasTensor:
            return keras.random.uniform((batch,), low, high, seed=self.seed_generator)

        angle = uniform(-self.rotation, self.rotation) * 2.0 * math.pi
        scale = uniform(self.zoom[0], self.zoom[1])
        mirror = ops.where(uniform(0.0, 1.0) < 0.5, -1.0, 1.0) if self.flip else ops.ones((batch,))
        shift_x = uniform(-self.translation, self.translation) * width
        shift_y = uniform(-self.translation, self.translation) * height
        cos, sin = ops.cos(angle) / scale, ops.sin(angle) / scale
        # output pixel p maps to input q = M (p - c) + c + t, with M = rotation * zoom * mirror
        m00, m01, m10, m11 = cos * mirror, -sin, sin * mirror, cos
        cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
        a2 = cx - (m00 * cx + m01 * cy) + shift_x
        b2 = cy - (m10 * cx + m11 * cy) + shift_y
        zeros = ops.zeros((batch,))
        transform = ops.stack([m00, m01, a2, m10, m11, b2, zeros, zeros], axis=1)
        return ops.image.affine_transform(images, transform, interpolation="bilinear", fill_mode=self.fill_mode)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "rotation": self.rotation,
            "zoom": list(self.zoom),
            "translation": self.translation,
            "flip": self.flip,
            "fill_mode": self.fill_mode,
            "seed": self.seed,
        }


#: Every custom object a saved model may hold, for ``keras.saving.load_model`` in any process.
CUSTOM_OBJECTS: dict[str, type] = {"shoelabel>RandomAffine": RandomAffine, "RandomAffine": RandomAffine}


class PackPooled(keras.layers.Layer):
    """``[maps (b, h, w, c), vector (b, d)]`` -> ``(b, h, w, c + k)``: the vector, zero-padded to
    ``h * w * k`` values, laid out as ``k`` extra channels. The frozen part of InceptionV3 then hands the
    trainable part one array per photo (one cache file, one batch), whatever it pools below the cut."""

    def compute_output_shape(self, input_shape: list[tuple]) -> tuple:
        (b, h, w, c), (_, d) = input_shape
        return (b, h, w, c + math.ceil(d / (h * w)))

    def call(self, inputs: list[KerasTensor]) -> KerasTensor:
        maps, vector = inputs
        _, h, w, c = maps.shape
        k = self.compute_output_shape([maps.shape, vector.shape])[-1] - c
        padded = ops.pad(vector, [[0, 0], [0, h * w * k - vector.shape[-1]]])
        return ops.concatenate([maps, ops.reshape(padded, (-1, h, w, k))], axis=-1)


class UnpackPooled(keras.layers.Layer):
    """The inverse of :class:`PackPooled`: ``(b, h, w, c + k)`` -> ``[maps (b, h, w, c), vector (b, d)]``."""

    def __init__(self, channels: int, length: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.channels, self.length = channels, length

    def compute_output_shape(self, input_shape: tuple) -> list[tuple]:
        b, h, w, _ = input_shape
        return [(b, h, w, self.channels), (b, self.length)]

    def call(self, packed: KerasTensor) -> list[KerasTensor]:
        maps = packed[..., : self.channels]
        _, h, w, c = packed.shape
        vector = ops.reshape(packed[..., self.channels :], (-1, h * w * (c - self.channels)))
        return [maps, vector[:, : self.length]]

    def get_config(self) -> dict:
        return {**super().get_config(), "channels": self.channels, "length": self.length}

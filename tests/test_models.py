"""The two architectures, trained for real on tiny inputs, and the activation cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import modeling  # noqa: F401
from modeling.feature_cache import CUT_CHANNELS, LOW_FEATURES, VIEWS, FeatureCache
from tests.conftest import make_brand_photo


def synthetic(tmp_path: Path, per_brand: int = 10, brands: int = 3) -> tuple[list[str], list[str]]:
    paths, labels = [], []
    for b in range(brands):
        for i in range(per_brand):
            paths.append(str(make_brand_photo(tmp_path / f"b{b}" / f"{i}.jpg", b, seed=1000 * b + i)))
            labels.append(f"brand{b}")
    return paths, labels


def test_keras_runs_on_jax_without_the_user_setting_it() -> None:
    import keras

    assert keras.backend.backend() == "jax"


@pytest.mark.slow
def test_cnn_learns_synthetic_brands(tmp_path: Path) -> None:
    from modeling.fitting import CnnConfig, load_pixels, train_cnn

    paths, labels = synthetic(tmp_path / "train", per_brand=12)
    test_paths, test_labels = synthetic(tmp_path / "test", per_brand=4)
    config = CnnConfig(input_size=64, epochs=15, batch_size=12, learning_rate=3e-3)
    outcome = train_cnn(paths, labels, config=config)
    assert outcome.class_names == ["brand0", "brand1", "brand2"]
    assert outcome.model.input.shape[1:] == (64, 64, 3)
    probs = outcome.model.predict(load_pixels(test_paths, 64).astype("float32"), verbose=0)
    accuracy = np.mean([outcome.class_names[i] for i in probs.argmax(1)] == np.array(test_labels))
    assert accuracy >= 0.75, f"the CNN did not learn easy synthetic brands (accuracy {accuracy:.2f})"
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_training_refuses_a_single_brand(tmp_path: Path) -> None:
    from modeling.fitting import TrainingError, train_cnn

    paths, labels = synthetic(tmp_path, per_brand=3, brands=1)
    with pytest.raises(TrainingError, match="at least 2 brands"):
        train_cnn(paths, labels)


def test_cnn_training_names_every_unreadable_photo(tmp_path: Path) -> None:
    from modeling.fitting import TrainingError, load_pixels

    paths, _ = synthetic(tmp_path, per_brand=2, brands=1)
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.jpg").write_text("not a photo")
    with pytest.raises(
        TrainingError, match=r"2 photo\(s\) could not be read.*empty\.jpg.*notes\.jpg.*Restore or remove"
    ):
        load_pixels([paths[0], str(tmp_path / "empty.jpg"), paths[1], str(tmp_path / "notes.jpg")], 32)
    assert load_pixels(paths, 32).shape == (2, 32, 32, 3)


def test_replace_head_keeps_known_brands(tmp_path: Path) -> None:
    from modeling.architectures import build_cnn, replace_head

    model = build_cnn(3, input_size=32, widths=(8, 16))
    kernel, _ = model.get_layer("brand").get_weights()
    bigger = replace_head(model, ["a", "b", "c", "d"], ["a", "c", "b"])
    new_kernel, _ = bigger.get_layer("brand").get_weights()
    assert new_kernel.shape == (kernel.shape[0], 4)
    assert np.allclose(new_kernel[:, 1], kernel[:, 2])  # "b" moved from column 2 to column 1
    assert np.allclose(new_kernel[:, 2], kernel[:, 1])
    assert bigger.output.shape[-1] == 4


def head_round(
    shas: list[str],
    paths: list[str],
    labels: list[str],
    cache: FeatureCache,
    config: Any,
    parent: Any,
    mode: str = "head",
) -> Any:
    """An InceptionV3 round (head-only by default) continuing ``parent`` (a training outcome)."""
    from modeling.fitting import train_inception

    return train_inception(
        shas,
        paths,
        labels,
        cache=cache,
        weights=None,
        mode=mode,
        config=config,
        parent=(parent.model, parent.class_names),
    )


@pytest.mark.slow
def test_inception_trains_from_cached_activations(tmp_path: Path) -> None:
    """weights=None and 75 px inputs: the real architecture and training path, at test size."""
    from modeling.architectures import INCEPTION_CUT
    from modeling.fitting import InceptionConfig, ensure_activations, train_inception

    paths, labels = synthetic(tmp_path / "photos", per_brand=4)
    shas = [f"{i:064x}" for i in range(len(paths))]
    cache = FeatureCache(tmp_path / "cache", "test")
    config = InceptionConfig(input_size=75, finetune_epochs=1, batch_size=8)
    outcome = train_inception(shas, paths, labels, cache=cache, weights=None, mode="finetune", config=config)
    assert outcome.details["activations_computed"] == len(paths)
    assert all(cache.has(sha) for sha in shas)
    packed = CUT_CHANNELS + LOW_FEATURES  # at 75 px mixed8 is 1 x 1: the pooled mixed5-7 make extra channels
    assert cache.get(shas[0]).shape == (VIEWS, 1, 1, packed) and cache.get(shas[0]).dtype == np.float16
    assert outcome.details["finetune_epochs"] == 1 and outcome.details["new_head"]
    assert outcome.model.get_layer(INCEPTION_CUT) is not None

    # a second round over the same photos never runs the lower network again
    def must_not_run() -> None:
        raise AssertionError("the lower network ran for cached photos")

    assert ensure_activations(None, cache, shas, paths, 75, make_lower=must_not_run).computed == 0
    assert ensure_activations(None, cache, shas, paths, 75, views=1, make_lower=must_not_run).computed == 0
    again = head_round(shas, paths, labels, cache, config, outcome)
    assert again.details["activations_computed"] == 0 and not again.details["new_head"]


@pytest.mark.slow
def test_head_round_after_finetuning_mixes_photos_cached_with_four_and_two_views(tmp_path: Path) -> None:
    """A fine-tuned model caches four views per photo, a head round two for photos added since:
    the head round must read both kinds (the README tour's order)."""
    from modeling.fitting import InceptionConfig, train_inception

    paths, labels = synthetic(tmp_path / "photos", per_brand=4)
    shas = [f"{i:064x}" for i in range(len(paths))]
    cache = FeatureCache(tmp_path / "cache", "test")
    config = InceptionConfig(input_size=75, finetune_epochs=1, batch_size=8)
    first = train_inception(shas[:8], paths[:8], labels[:8], cache=cache, weights=None, mode="finetune", config=config)
    assert cache.views(shas[0]) == VIEWS
    again = head_round(shas, paths, labels, cache, config, first)
    assert cache.views(shas[-1]) == config.head_views < VIEWS
    assert again.details["activations_computed"] == len(paths) - 8
    assert cache.load(shas, views=2).shape[:2] == (len(shas), 2)


@pytest.mark.slow
def test_finetuning_trains_only_the_top_blocks_and_head() -> None:
    from keras import layers

    from modeling.architectures import INCEPTION_CUT, build_inception, set_frozen_below_cut

    model = build_inception(3, weights=None, input_size=75)
    set_frozen_below_cut(model)
    names = [layer.name for layer in model.layers]
    cut = names.index(INCEPTION_CUT)
    below, above = model.layers[: cut + 1], model.layers[cut + 1 :]
    assert not any(layer.trainable_weights for layer in below)
    top_convs = [layer for layer in above if isinstance(layer, layers.Conv2D)]
    assert len(top_convs) == 18 and all(layer.trainable for layer in top_convs)
    assert not any(isinstance(layer, layers.BatchNormalization) and layer.trainable_weights for layer in above)
    assert model.get_layer("brand").trainable
    assert len(model.trainable_weights) == 18 + 2


@pytest.mark.slow
def test_real_imagenet_weights_load(weights_path: Path) -> None:
    from keras import layers

    from modeling.architectures import build_inception, weights_id

    model = build_inception(3, weights=str(weights_path), input_size=75)
    first_conv = next(layer for layer in model.layers if isinstance(layer, layers.Conv2D)).get_weights()[0]
    assert first_conv.shape == (3, 3, 3, 32) and np.abs(first_conv).mean() > 0.01
    assert weights_id(str(weights_path)) == "md5-1de645f043e7"


def test_missing_weights_file_is_a_clear_error(tmp_path: Path) -> None:
    from modeling.architectures import WeightsError, build_inception

    with pytest.raises(WeightsError, match=r"weights file not found: .*nope\.h5.*SHOELABEL_INCEPTION_WEIGHTS"):
        build_inception(3, weights=str(tmp_path / "nope.h5"), input_size=75)


def test_wrong_weights_file_is_a_clear_error(tmp_path: Path) -> None:
    from modeling.architectures import WeightsError, build_inception

    bogus = tmp_path / "bogus.h5"
    bogus.write_bytes(b"not hdf5")
    with pytest.raises(WeightsError, match=r"Could not load InceptionV3 weights from .*bogus\.h5"):
        build_inception(3, weights=str(bogus), input_size=75)


def test_imagenet_download_failure_explains_the_offline_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    import keras

    from modeling.architectures import WeightsError, inception_base

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.setattr("keras.src.applications.inception_v3.file_utils.get_file", offline)
    with pytest.raises(WeightsError, match="SHOELABEL_INCEPTION_WEIGHTS"):
        inception_base("imagenet", 75)


@pytest.mark.slow
def test_random_affine_flips_exactly_and_is_idle_at_inference() -> None:
    from modeling.layers import RandomAffine

    x = np.random.default_rng(0).random((6, 16, 16, 3)).astype("float32")
    flip_only = RandomAffine(rotation=0.0, zoom=(1.0, 1.0), translation=0.0, flip=True, seed=3)
    out = np.asarray(flip_only(x, training=True))
    for original, augmented in zip(x, out, strict=True):
        assert np.allclose(augmented, original, atol=1e-5) or np.allclose(augmented, original[:, ::-1], atol=1e-5)
    assert np.allclose(np.asarray(flip_only(x, training=False)), x)
    moved = np.asarray(RandomAffine(seed=1)(x, training=True))
    assert moved.shape == x.shape and not np.allclose(moved, x)


@pytest.mark.slow
def test_saved_models_load_with_their_custom_layers(tmp_path: Path) -> None:
    import keras

    from modeling.architectures import build_cnn
    from modeling.registry import load_fresh

    model = build_cnn(2, input_size=32, widths=(8, 16))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = load_fresh(path)
    x = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32") * 255
    assert np.allclose(np.asarray(loaded.predict_on_batch(x)), np.asarray(model.predict_on_batch(x)), atol=1e-5)
    assert isinstance(loaded, keras.Model)


def test_only_the_most_recently_used_models_stay_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from collections import OrderedDict

    from modeling import registry

    monkeypatch.setattr(registry, "_loaded", OrderedDict())
    models = {i: object() for i in range(registry.MODELS_IN_MEMORY + 2)}
    for i, model in models.items():
        (tmp_path / f"{i}.keras").write_bytes(b"")
        registry.remember(tmp_path / f"{i}.keras", model)
    assert registry.load_keras(tmp_path / "2.keras") is models[2]  # still held: not read from disk again
    registry.remember(tmp_path / "new.keras", object())
    held = [Path(key).name for key in registry._loaded]
    assert held == ["3.keras", "4.keras", "5.keras", "2.keras", "new.keras"][-registry.MODELS_IN_MEMORY :]


@pytest.mark.parametrize("side", [1, 5, 8])
def test_pooled_lower_blocks_pack_into_the_cut_and_back(side: int) -> None:
    from modeling.layers import PackPooled, UnpackPooled

    rng = np.random.default_rng(side)
    maps = rng.normal(size=(2, side, side, 6)).astype("float32")
    vector = rng.normal(size=(2, LOW_FEATURES)).astype("float32")
    packed = np.asarray(PackPooled()([maps, vector]))
    assert packed.shape[:3] == (2, side, side) and packed.shape[3] * side * side >= 6 * side * side + LOW_FEATURES
    back_maps, back_vector = (np.asarray(a) for a in UnpackPooled(6, LOW_FEATURES)(packed))
    np.testing.assert_array_equal(back_maps, maps)
    np.testing.assert_array_equal(back_vector, vector)


def _old_layout_inception(n_classes: int, size: int) -> object:
    """InceptionV3 as earlier releases saved it: the head pools ``mixed8`` and ``mixed10`` only."""
    import keras

    from modeling.architectures import _head, inception_base

    inputs = keras.Input((size, size, 3), name="pixels")
    base = inception_base(None, size, input_tensor=keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs))
    pool = keras.layers.Concatenate(name="pool")(
        [
            keras.layers.GlobalAveragePooling2D(name="pool_cut")(base.get_layer("mixed8").output),
            keras.layers.GlobalAveragePooling2D(name="pool_top")(base.get_layer("mixed10").output),
        ]
    )
    return keras.Model(inputs, _head(pool, n_classes, 0.3), name="inception")


@pytest.mark.slow
def test_split_inception_answers_as_the_whole_network_in_both_pooling_layouts(tmp_path: Path) -> None:
    """The cached cut (mixed8 maps with the pooled mixed5-7 packed in) through the upper part gives
    the whole network's answer, for a model of this release and one saved by an earlier release."""
    import keras

    from modeling.architectures import build_inception, cam_kernels, split_inception
    from modeling.registry import load_fresh

    pixels = np.random.default_rng(0).uniform(0, 255, size=(2, 75, 75, 3)).astype("float32")
    old_file = tmp_path / "old.keras"
    _old_layout_inception(3, 75).save(old_file)
    for model in (build_inception(3, None, 75), load_fresh(old_file)):
        kernel = np.random.default_rng(1).normal(size=model.get_layer("brand").kernel.shape)
        model.get_layer("brand").set_weights([kernel.astype("float32"), np.zeros(3, "float32")])
        lower, upper = split_inception(model)
        cut = np.asarray(lower.predict_on_batch(pixels))
        assert cut.shape == (2, 1, 1, CUT_CHANNELS + LOW_FEATURES)
        whole = np.asarray(model.predict_on_batch(pixels))
        np.testing.assert_allclose(np.asarray(upper.predict_on_batch(cut)), whole, atol=1e-5)
        assert [k.shape[0] for k in cam_kernels(model)] == [CUT_CHANNELS, 2048]
        assert isinstance(model, keras.Model)


@pytest.mark.slow
def test_a_fine_tuned_models_temperature_is_fitted_on_photos_it_never_learned_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The validation slice that fits the temperature is left out of the head's fit as well as of
    fine-tuning (a head fitted on it classifies it perfectly and the temperature sharpens without end);
    a round continuing a model that saw those photos keeps that model's temperature."""
    import modeling.fitting as fitting
    from modeling.fitting import InceptionConfig, train_inception

    paths, labels = synthetic(tmp_path / "photos", per_brand=10)
    shas = [f"{i:064x}" for i in range(len(paths))]
    cache = FeatureCache(tmp_path / "cache", "test")
    config = InceptionConfig(input_size=75, finetune_epochs=1, batch_size=8, validation_share=0.2)
    head_fitted_on: list[int] = []
    fit_head = fitting.fit_linear_head
    monkeypatch.setattr(
        fitting, "fit_linear_head", lambda x, y, *a, **k: head_fitted_on.append(len(y)) or fit_head(x, y, *a, **k)
    )
    first = train_inception(shas, paths, labels, cache=cache, weights=None, mode="finetune", config=config)
    validated = first.details["finetune_calibration"]["n"]
    assert validated == 6 and head_fitted_on == [len(paths) - validated]
    again = head_round(shas, paths, labels, cache, config, first, mode="finetune")
    assert again.details["finetune_calibration"] is None and "kept" in again.details["finetune_calibration_note"]

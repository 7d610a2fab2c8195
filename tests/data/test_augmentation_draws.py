"""The random draws of `Augmentation` follow mmseg's distributions."""

import numpy as np
import pytest

from keras_danet.data.augmentation import Augmentation, choose_crop, crop, crop_is_acceptable

AUGMENT = Augmentation(scale=(64, 48), crop_size=(32, 40))


def test_resize_ratio_is_uniform_on_half_to_double():
    rng = np.random.default_rng(0)
    ratios = np.sort([AUGMENT.draw_ratio(rng) for _ in range(5000)])
    assert ratios[0] >= 0.5 and ratios[-1] < 2.0
    # Kolmogorov-Smirnov distance to U(0.5, 2.0); 1.63 / sqrt(n) is the 1 % critical value.
    expected = (ratios - 0.5) / 1.5
    empirical = np.arange(1, len(ratios) + 1) / len(ratios)
    assert np.abs(empirical - expected).max() < 1.63 / np.sqrt(len(ratios))


def test_flip_rate_is_one_half():
    label = np.zeros((30, 40), np.uint8)
    label[:, 20:] = 1  # left 0, right 1: a flip puts 1 on the left
    image = np.zeros((30, 40, 3), np.uint8)
    augment = Augmentation(scale=(40, 30), crop_size=(64, 80), cat_max_ratio=1.0, photometric=False)
    rng = np.random.default_rng(1)
    flips = [augment(image, label, rng)[1][0, 0] == 1 for _ in range(2000)]
    assert abs(np.mean(flips) - 0.5) < 4 * np.sqrt(0.25 / 2000)


def test_photometric_steps_each_happen_half_the_time_in_range():
    rng = np.random.default_rng(2)
    draws = [AUGMENT.draw_photometric(rng) for _ in range(4000)]
    tolerance = 4 * np.sqrt(0.25 / 4000)
    for step in ("brightness", "contrast", "saturation", "hue"):
        assert abs(np.mean([getattr(d, step) is not None for d in draws]) - 0.5) < tolerance
    assert abs(np.mean([d.contrast_first for d in draws]) - 0.5) < tolerance
    brightness = [d.brightness for d in draws if d.brightness is not None]
    assert min(brightness) >= -32 and max(brightness) < 32
    for step in ("contrast", "saturation"):
        values = [getattr(d, step) for d in draws if getattr(d, step) is not None]
        assert min(values) >= 0.5 and max(values) < 1.5
    # numpy's randint(-18, 18), as mmseg draws it: -18 to 17.
    assert sorted({d.hue for d in draws if d.hue is not None}) == list(range(-18, 18))


def test_crop_acceptance_rule():
    rng = np.random.default_rng(3)
    label = np.zeros((60, 80), np.uint8)
    label[40:, 50:] = rng.integers(1, 4, (20, 30))  # other classes in one corner only
    label[rng.random(label.shape) < 0.05] = 255
    single_draw_ok, kept_ok = [], []
    for _ in range(500):
        draws = []

        def draw_offset(margin_height, margin_width, draws=draws):
            draws.append(
                (int(rng.integers(margin_height + 1)), int(rng.integers(margin_width + 1)))
            )
            return draws[-1]

        box = choose_crop(label, (20, 24), 0.75, draw_offset)
        accepted = crop_is_acceptable(crop(label, box), 0.75)
        assert 1 <= len(draws) <= 11
        assert accepted or len(draws) == 11  # a rejected crop is only kept as the 11th draw
        first = draws[0]
        single_draw_ok.append(
            crop_is_acceptable(
                crop(label, (first[0], first[0] + 20, first[1], first[1] + 24)), 0.75
            )
        )
        kept_ok.append(accepted)
    assert np.mean(single_draw_ok) < 0.35 < np.mean(kept_ok)
    # The rule itself: more than one labelled class, the largest under 75 %, 255 not counted.
    assert not crop_is_acceptable(np.array([[0, 0, 0, 1]]), 0.75)
    assert crop_is_acceptable(np.array([[0, 0, 1, 1]]), 0.75)
    assert not crop_is_acceptable(np.array([[0, 255, 255, 255]]), 0.75)
    assert crop_is_acceptable(np.array([[0, 0, 1, 255, 255, 255]]), 0.75)


def test_choice_resize_picks_each_scale_equally_often_and_the_crop_pads_to_the_divisor():
    scales = [(96, 64), (150, 40), (64, 48)]
    augment = Augmentation(scale=scales, crop_size=(40, 56), pad_size_divisor=32)
    rng = np.random.default_rng(4)
    picks = [augment.draw_scale(rng) for _ in range(3000)]
    for scale in scales:
        assert abs(picks.count(scale) / 3000 - 1 / 3) < 4 * np.sqrt(2 / 9 / 3000)
    image, label = augment(np.zeros((97, 131, 3), np.uint8), np.zeros((97, 131), np.uint8), rng)
    assert image.shape == (64, 64, 3) and label.shape == (64, 64)  # 40x56 padded up to 32s
    assert (label[40:] == 255).all() and (image[40:] == 0).all()  # mmcv's Pad: raw black


def test_bad_scales_and_divisors_are_refused_with_the_value():
    for options, message in [
        ({"scale": (64,)}, "scale must be"),
        ({"scale": [(64, 48), (0, 5)]}, "scale must be"),
        ({"scale": (64, 48), "pad_size_divisor": 0}, "pad_size_divisor"),
        ({"scale": (64, 48), "resize_to_multiple": 2.5}, "resize_to_multiple"),
    ]:
        with pytest.raises(ValueError, match=message):
            Augmentation(crop_size=(32, 40), **options)

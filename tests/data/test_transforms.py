import cv2
import numpy as np
import pytest
import torch

from segvit.data import geometry, transforms
from segvit.data.catalog import DATASETS
from segvit.modeling.specs import AUGREG_NORM, IMAGENET_NORM, Normalization

ADE = DATASETS["ade20k"]
DEMO = DATASETS["demo"]


def _image_and_label(height=60, width=80, ids=(3, 7, 11, 255)):
    """A label of a few ids in vertical stripes and an image whose red channel encodes them."""
    label = np.empty((height, width), np.uint8)
    for index, value in enumerate(ids):
        label[:, index * width // len(ids) : (index + 1) * width // len(ids)] = value
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = label
    return image, label


def test_rescale_size_keeps_aspect_inside_the_scale():
    assert geometry.rescale_size(512, 683, (2048, 512)) == (512, 683)
    assert geometry.rescale_size(100, 1000, (2048, 512)) == (205, 2048)  # long side binds
    assert geometry.rescale_size(300, 400, (520, 520)) == (390, 520)


def test_rescale_size_keeps_at_least_one_pixel_a_side():
    # mmcv's rounding gives 8 x 2048 / 70000 = 0.23 -> 0, which OpenCV refuses to resize to.
    assert geometry.rescale_size(70000, 8, (2048, 512)) == (2048, 1)
    assert geometry.rescale_size(8, 70000, (2048, 512)) == (1, 2048)
    assert geometry.rescale_size(3000, 2, (2048, 512)) == (2048, 1)  # 1.37 rounds to 1 anyway


def test_rescale_size_truncates_the_ratio_scaled_bounds_as_mmseg():
    # (2048, 513) x 1.5 = (3072, 769.5) -> (3072, 769): a square fits 769, not 770.
    assert geometry.rescale_size(1000, 1000, (2048, 513), 1.5) == (769, 769)
    assert geometry.rescale_size(375, 500, (2048, 512), 0.75) == (384, 512)


@pytest.mark.parametrize("seed", range(8))
def test_labels_are_never_interpolated(seed):
    image, label = _image_and_label()
    _, out = transforms.TrainTransform(DEMO, 128)(image, label, np.random.default_rng(seed))
    assert set(out.unique().tolist()) <= {3, 7, 11, 255}


@pytest.mark.parametrize("seed", range(6))
def test_image_and_label_stay_aligned_through_resize_crop_and_flip(seed):
    image, label = _image_and_label(ids=(40, 120, 200))
    transform = transforms.TrainTransform(DEMO, 128, photometric=False)
    pixels, out = transform(image, label, np.random.default_rng(seed))
    red = pixels[0] * 127.5 + 127.5
    inside = out != 255
    # Except near stripe borders (bilinear blends a few pixels there) colour = label value;
    # a shift or a flip of one but not the other would break most pixels.
    agree = torch.abs(red - out.float()) < 2
    assert agree[inside].float().mean() > 0.85


def test_small_images_are_padded_with_zero_and_255():
    image, label = _image_and_label(30, 40, ids=(1, 2))
    transform = transforms.TrainTransform(DEMO, 128, ratio_range=(0.5, 0.5), photometric=False)
    pixels, out = transform(image, label, np.random.default_rng(0))
    # (30, 40) resized into (long 256, short 64) is (64, 85): padded below and to the right
    assert geometry.rescale_size(30, 40, (256, 64)) == (64, 85)
    assert pixels.shape == (3, 128, 128) and out.shape == (128, 128)
    assert (out[64:] == 255).all() and (out[:, 85:] == 255).all()
    assert (out[:64, :85] != 255).all()
    assert (pixels[:, 64:] == 0).all() and (pixels[:, :, 85:] == 0).all()


def test_crop_and_output_sizes_at_the_paper_scale():
    image, label = _image_and_label(512, 683)
    for seed in range(4):
        pixels, out = transforms.TrainTransform(ADE, 512)(image, label, np.random.default_rng(seed))
        assert pixels.shape == (3, 512, 512) and pixels.dtype == torch.float32
        assert out.shape == (512, 512) and out.dtype == torch.int64
        assert pixels.min() >= -1.0 and pixels.max() <= 1.0


def _balanced_share(transform, label, seeds=60):
    """Share of chosen crops in which no class covers 75% or more."""
    balanced = 0
    for seed in range(seeds):
        _, crop = transform.choose_crop(label, label.shape, np.random.default_rng(seed))
        counts = np.bincount(crop.ravel(), minlength=3)[1:3]
        balanced += counts.max() < 0.75 * counts.sum()
    return balanced / seeds


def test_cat_max_ratio_redraws_crops_dominated_by_one_class():
    # Class 2 on the right half: about 23% of 64-wide crops have both classes at >= 25%.
    label = np.ones((64, 200), np.uint8)
    label[:, 100:] = 2
    with_rule = _balanced_share(transforms.TrainTransform(DEMO, 64, cat_max_ratio=0.75), label)
    without = _balanced_share(transforms.TrainTransform(DEMO, 64, cat_max_ratio=1.0), label)
    assert without < 0.4 and with_rule > 0.8  # ten tries: 1 - 0.77**10 = 0.93 expected


class CountingRng:
    """A seeded generator that counts crop draws (each draw asks for y0 then x0)."""

    def __init__(self, seed):
        self.rng, self.calls = np.random.default_rng(seed), 0

    def integers(self, *args, **kwargs):
        self.calls += 1
        return self.rng.integers(*args, **kwargs)

    @property
    def draws(self):
        return self.calls // 2


def _replayed_boxes(seed, new_h, new_w, crop, count=11):
    rng = np.random.default_rng(seed)
    return [
        (int(rng.integers(0, new_h - crop + 1)), int(rng.integers(0, new_w - crop + 1)))
        for _ in range(count)
    ]


def test_balanced_needs_two_classes_and_the_largest_under_the_ratio():
    def label(**counts):
        return np.concatenate([np.full(n, int(k[1:]), np.uint8) for k, n in counts.items()])

    assert transforms._balanced(label(c1=2, c2=1, c255=50), 0.75)  # 67% of labelled pixels
    assert not transforms._balanced(label(c1=3, c2=1), 0.75)  # exactly 75%: not under it
    assert not transforms._balanced(label(c1=5, c255=5), 0.75)  # one class
    assert not transforms._balanced(label(c255=9), 0.75)  # nothing labelled


@pytest.mark.parametrize("seed", range(3))
def test_cat_max_ratio_keeps_an_eleventh_unchecked_draw_when_ten_fail(seed):
    label = np.full((64, 200), 255, np.uint8)
    label[:, :2] = 4  # one class anywhere: every checked crop fails
    rng = CountingRng(seed)
    box, crop = transforms.TrainTransform(DEMO, 64).choose_crop(label, (64, 200), rng)
    assert rng.draws == 11  # mmsegmentation: ten checked draws, then one more kept
    assert box == (*_replayed_boxes(seed, 64, 200, 64)[10], 64, 64)
    assert crop.shape == (64, 64)


@pytest.mark.parametrize("seed", range(12))
def test_cat_max_ratio_stops_at_the_first_passing_draw(seed):
    # Class 1 left of column 100, class 2 right of it: a 64-wide crop at x0 holds
    # 100 - x0 columns of class 1; it passes while both classes have more than 25%.
    label = np.ones((64, 200), np.uint8)
    label[:, 100:] = 2
    rng = CountingRng(seed)
    box, crop = transforms.TrainTransform(DEMO, 64).choose_crop(label, (64, 200), rng)
    boxes = _replayed_boxes(seed, 64, 200, 64)
    passing = [i for i, (_, x0) in enumerate(boxes[:10]) if 16 < 100 - x0 < 48]
    expected = passing[0] if passing else 10
    assert rng.draws == expected + 1
    assert box == (*boxes[expected], 64, 64)
    assert np.array_equal(crop, label[:, box[1] : box[1] + 64])


SIZES = [(37, 53), (101, 77), (64, 90)]
RATIOS = [0.5, 0.37, 1.7, 2.0, 1.23]


@pytest.mark.parametrize("ratio", RATIOS)
@pytest.mark.parametrize("shape", SIZES)
def test_label_indexing_is_cv2_inter_nearest(shape, ratio):
    height, width = shape
    label = np.random.default_rng(0).integers(0, 151, shape, dtype=np.uint8)
    new_h, new_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    expected = cv2.resize(label, (new_w, new_h), interpolation=cv2.INTER_NEAREST)
    rows, cols = geometry.nearest_index(height, new_h), geometry.nearest_index(width, new_w)
    assert np.array_equal(label[np.ix_(rows, cols)], expected)


@pytest.mark.parametrize("factor", [0.5, 0.37, 1.7])
@pytest.mark.parametrize("shape", SIZES)
def test_train_sample_equals_cv2_resize_then_crop(shape, factor):
    """mmseg's order with mmcv's cv2 backend: resize the whole image (INTER_LINEAR, uint8)
    and label (INTER_NEAREST), then crop; no flip or distortion, so pixels are exact."""
    height, width = shape
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    label = rng.integers(0, 151, shape, dtype=np.uint8)
    crop, (long_side, short_side) = 40, DEMO.base_scale_for(40)  # (512, 128)
    ratio = factor * min(shape) / short_side  # the image's own scale factor is about `factor`
    transform = transforms.TrainTransform(
        DEMO, crop, ratio_range=(ratio, ratio), cat_max_ratio=1.0, flip_prob=0.0,
        photometric=False,
    )  # fmt: skip
    pixels, out = transform(image, label, np.random.default_rng(7))

    new_h, new_w = geometry.rescale_size(
        height, width, (int(long_side * ratio), int(short_side * ratio))
    )
    draw = np.random.default_rng(7)
    draw.uniform(ratio, ratio)  # the resize ratio
    crop_h, crop_w = min(crop, new_h), min(crop, new_w)
    y0, x0 = int(draw.integers(0, new_h - crop_h + 1)), int(draw.integers(0, new_w - crop_w + 1))
    big_image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    big_label = cv2.resize(label, (new_w, new_h), interpolation=cv2.INTER_NEAREST)
    want_image = big_image[y0 : y0 + crop_h, x0 : x0 + crop_w].transpose(2, 0, 1)
    want_label = big_label[y0 : y0 + crop_h, x0 : x0 + crop_w]
    got_image = torch.round(pixels[:, :crop_h, :crop_w] * 127.5 + 127.5).to(torch.uint8)
    assert abs(new_h / height - factor) < 0.03
    assert np.array_equal(got_image.numpy(), want_image)
    assert np.array_equal(out[:crop_h, :crop_w].numpy(), want_label)
    assert (out[crop_h:] == 255).all() and (out[:, crop_w:] == 255).all()


def test_same_seed_same_sample_other_seed_other_sample():
    image, label = _image_and_label(120, 160)
    transform = transforms.TrainTransform(DEMO, 128)
    first = transform(image, label, np.random.default_rng(5))
    again = transform(image, label, np.random.default_rng(5))
    other = transform(image, label, np.random.default_rng(6))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])


def test_photometric_draws_are_reproducible_and_cover_each_part():
    draws = [transforms.Photometric.draw(np.random.default_rng(s)) for s in range(200)]
    assert draws[:5] == [transforms.Photometric.draw(np.random.default_rng(s)) for s in range(5)]
    for field in ("brightness", "contrast", "saturation", "hue_shift"):
        share = np.mean([getattr(d, field) is not None for d in draws])
        assert 0.35 < share < 0.65
    shifts = {d.hue_shift for d in draws if d.hue_shift is not None}
    assert min(shifts) >= -18 and max(shifts) <= 17  # numpy's randint(-18, 18), as mmseg


def _mmseg_photometric(bgr, draw):
    """mmseg 0.24 PhotoMetricDistortion's arithmetic, written out on a BGR uint8 image."""

    def convert(img, alpha=1, beta=0):
        return np.clip(img.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)

    img = bgr
    if draw.brightness is not None:
        img = convert(img, beta=draw.brightness)
    if draw.contrast_first and draw.contrast is not None:
        img = convert(img, alpha=draw.contrast)
    if draw.saturation is not None:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
        img[:, :, 1] = convert(img[:, :, 1], alpha=draw.saturation)
        img = cv2.cvtColor(img, cv2.COLOR_HSV2BGR)
    if draw.hue_shift is not None:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
        img[:, :, 0] = (img[:, :, 0].astype(int) + draw.hue_shift) % 180
        img = cv2.cvtColor(img, cv2.COLOR_HSV2BGR)
    if not draw.contrast_first and draw.contrast is not None:
        img = convert(img, alpha=draw.contrast)
    return img


@pytest.mark.parametrize(
    "draw",
    [
        transforms.Photometric(10.7, 1.3, True, None, None),  # truncation between the steps
        transforms.Photometric(-31.2, 0.55, False, 1.42, -18),
        transforms.Photometric(None, None, True, 0.6, 17),
        transforms.Photometric(25.0, None, False, None, 5),
    ],
)
def test_photometric_is_mmsegs_uint8_pipeline(draw):
    rgb = np.random.default_rng(0).integers(0, 256, (21, 33, 3), dtype=np.uint8)
    rgb[0, :4] = [(128, 128, 128), (0, 0, 0), (255, 255, 255), (250, 3, 3)]
    got = draw(rgb[:, ::-1])  # a flipped (negative-stride) view, as TrainTransform passes
    want = _mmseg_photometric(np.ascontiguousarray(rgb[:, ::-1, ::-1]), draw)[..., ::-1]
    assert got.dtype == np.uint8 and np.array_equal(got, want)


def test_photometric_truncates_after_each_step():
    grey = np.full((1, 1, 3), 100, np.uint8)
    # mmseg: 100 + 0.9 = 100.9 is truncated to 100, then 100 x 1.49 = 149. Kept in float all
    # the way (this toolkit's earlier behaviour), 100.9 x 1.49 = 150.3 would give 150.
    got = transforms.Photometric(0.9, 1.49, True, None, None)(grey)
    assert got[0, 0, 0] == 149


def _mmcv_imnormalize(image: np.ndarray, norm: Normalization) -> np.ndarray:
    """mmcv's imnormalize_ is these two cv2 calls on a float32 copy (to_rgb off: RGB in)."""
    out = image.astype(np.float32)
    cv2.subtract(out, np.float64(np.array(norm.mean).reshape(1, -1)), out)
    cv2.multiply(out, 1 / np.float64(np.array(norm.std).reshape(1, -1)), out)
    return out


@pytest.mark.parametrize("norm", [AUGREG_NORM, IMAGENET_NORM], ids=["augreg", "imagenet"])
def test_normalize_is_mmcv_imnormalize_bit_for_bit(norm):
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    image[0, 0] = (0, 255, 51)
    got = geometry.normalize(image, norm)
    assert torch.equal(got, torch.from_numpy(_mmcv_imnormalize(image, norm)).permute(2, 0, 1))
    if norm is AUGREG_NORM:
        assert got[:, 0, 0].tolist() == pytest.approx([-1.0, 1.0, -0.6])
        # Dividing by 127.5 instead of multiplying by float32(1/127.5) differs in the last bit
        # of some values: the rule above is mmcv's, not the division.
        divided = (torch.from_numpy(image).permute(2, 0, 1).float() - 127.5) / 127.5
        assert not torch.equal(got, divided)


def test_the_train_transform_normalises_with_its_norm():
    image, label = _image_and_label(64, 64)
    args = dict(ratio_range=(1.0, 1.0), photometric=False, flip_prob=0.0)
    augreg, _ = transforms.TrainTransform(DEMO, 64, **args)(image, label, np.random.default_rng(0))
    imagenet, _ = transforms.TrainTransform(DEMO, 64, norm=IMAGENET_NORM, **args)(
        image, label, np.random.default_rng(0)
    )
    pixels = augreg * 127.5 + 127.5  # the same crop of the same draw, back in 0..255
    mean = torch.tensor(IMAGENET_NORM.mean)[:, None, None]
    std = torch.tensor(IMAGENET_NORM.std)[:, None, None]
    assert not torch.allclose(imagenet, augreg, atol=0.05)
    assert torch.allclose(imagenet, (pixels - mean) / std, atol=1e-4)


def test_normalization_is_checked_and_read_from_timm_units():
    assert Normalization.from_unit((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)) == AUGREG_NORM
    assert Normalization.from_unit((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)) == IMAGENET_NORM
    with pytest.raises(ValueError, match="positive"):
        Normalization((0, 0, 0), (1, 0, 1))
    with pytest.raises(ValueError, match="3 means"):
        Normalization((0, 0), (1, 1))


def test_sample_rng_is_the_engine_formula_keyed_by_seed_epoch_and_index():
    draws = transforms.sample_rng(3, 2, 17).random(4)
    assert np.array_equal(draws, np.random.default_rng([3, 1, 2, 17]).random(4))
    assert np.array_equal(draws, transforms.sample_rng(3, 2, 17).random(4))
    for other in ((4, 2, 17), (3, 3, 17), (3, 2, 18), (3, 17, 2)):
        assert not np.array_equal(draws, transforms.sample_rng(*other).random(4))
    shuffle = np.random.default_rng([3, 0, 2])  # the sampler's stream for epoch 2: apart
    assert not np.array_equal(draws, shuffle.random(4))

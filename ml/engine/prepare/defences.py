"""Training-only defences against acquisition shortcuts (issue 7): what the training split is shown.

Harmonisation (crop, detail level, intensity) is preprocessing and lives in `harmonise` /
`PreprocessingSpec`, applied at inference too. What is here only ever touches training batches:

- **A second rendering of every training film** (`variants`, made once when the films are
  loaded): the film in the acquisition style of a source that holds only the *other* class
  (`counterfactual_augmentation`, `acquisition.render_in_style` with styles measured on the
  training split), and/or JPEG re-encoded at a random quality (`jpeg_augmentation`), both at the
  film's own resolution, before harmonisation and resizing, as an institution would have stored
  it. Each time a film is drawn, its variant is shown instead with probability 1/2, so style
  carries no label.
- **Non-lung regions made useless**, per batch, each with its own probability: everything
  outside the (dilated) lung fields set to a random grey (`outside_lung_blanking`; masks from
  `lungs.lung_fields` on the harmonised film), random strips along the edges and corners
  (`edge_blanking`), blur and noise (`blur_noise`).

`training_arrays` loads the training split with what the switches need; `defend_batch` is mapped
over training batches by `pipeline.make_tf_dataset`. Validation, test and inference never see them.
"""
from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

JPEG_QUALITIES = (30, 95)
EDGE_MAX = 0.15  # widest blanked strip, share of the side
NOISE_SIGMA = 8.0  # grey levels, at most
MASK_DILATION = 0.04  # share of the side the lung mask is grown by before blanking outside it


def uses_variants(config) -> bool:
    return bool(config.counterfactual_augmentation or config.jpeg_augmentation)


def uses_masks(config) -> bool:
    return bool(config.outside_lung_blanking)


def active(config) -> bool:
    return uses_variants(config) or uses_masks(config) or bool(config.edge_blanking or config.blur_noise)


def other_class_styles(label: str, styles: dict) -> list:
    """Styles of sources holding only classes other than `label` (empty when none exists)."""
    return [style for style in styles.values() if label not in style.classes]


def jpeg_reencode(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("L"), dtype=np.uint8)


def make_variant(film: np.ndarray, label: str, config, styles: dict, rng: np.random.Generator) -> np.ndarray:
    """The film as another institution would have stored it: another class's source style and/or a random JPEG quality."""
    from .acquisition import render_in_style

    variant = film
    if config.counterfactual_augmentation:
        candidates = other_class_styles(label, styles)
        if candidates:
            variant = render_in_style(variant, candidates[int(rng.integers(len(candidates)))])
    if config.jpeg_augmentation:
        variant = jpeg_reencode(variant, int(rng.integers(JPEG_QUALITIES[0], JPEG_QUALITIES[1] + 1)))
    return variant


def dilated_lung_mask(harmonised: np.ndarray, size: int) -> np.ndarray:
    from scipy import ndimage
    from skimage import morphology

    from .lungs import lung_fields

    mask = lung_fields(harmonised, size=size).mask
    return ndimage.binary_dilation(mask, morphology.disk(max(1, round(MASK_DILATION * size))))


def training_arrays(samples, spec, config, styles: dict | None, seed: int, *, workers: int = 2):
    """(variants uint8 (N,S,S,1) or None, lung masks uint8 (N,S,S,1) or None) for the training split."""
    from ..decode.images import load_image_file
    from .preprocessing import harmonise_image, resize_images

    want_variants, want_masks = uses_variants(config), uses_masks(config)
    size = spec.image_size

    def one(item):
        index, sample = item
        film = load_image_file(sample.path)
        rng = np.random.default_rng([seed, index])
        variant = resize_images([make_variant(film, sample.label, config, styles or {}, rng)], spec)[0] if want_variants else None
        mask = dilated_lung_mask(harmonise_image(film, spec), size)[:, :, None].astype(np.uint8) if want_masks else None
        return variant, mask

    with ThreadPoolExecutor(max_workers=workers) as pool:
        made = list(pool.map(one, enumerate(samples)))
    variants = np.stack([v for v, _ in made]) if want_variants else None
    masks = np.stack([m for _, m in made]) if want_masks else None
    return variants, masks


def defend_batch(batch: dict, config, seed: int):
    """TF ops on one training batch {"image", "variant"?, "mask"?} (uint8 (B,S,S,1)) -> float32 (B,S,S,1) grey 0-255."""
    import tensorflow as tf

    x = tf.cast(batch["image"], tf.float32)
    shape = tf.shape(x)
    n, height, width = shape[0], shape[1], shape[2]

    def chance(p, salt):
        return tf.reshape(tf.random.uniform([n], seed=seed + salt) < p, [-1, 1, 1, 1])

    def random_grey(salt):
        return tf.reshape(tf.random.uniform([n], 0.0, 255.0, seed=seed + salt), [-1, 1, 1, 1])

    if "variant" in batch:
        x = tf.where(chance(0.5, 1), tf.cast(batch["variant"], tf.float32), x)
    if "mask" in batch:
        outside = tf.logical_and(chance(config.outside_lung_blanking, 2), tf.equal(batch["mask"], 0))
        x = tf.where(outside, random_grey(3), x)
    if config.edge_blanking:
        rows = tf.reshape(tf.cast(tf.range(height), tf.float32) / tf.cast(height, tf.float32), [1, -1, 1, 1])
        cols = tf.reshape(tf.cast(tf.range(width), tf.float32) / tf.cast(width, tf.float32), [1, 1, -1, 1])
        widths = tf.random.uniform([4, n], 0.0, EDGE_MAX, seed=seed + 4)
        widths = widths * tf.cast(tf.random.uniform([4, n], seed=seed + 5) < 0.5, tf.float32)  # each edge half the time
        top, bottom, left, right = (tf.reshape(w, [-1, 1, 1, 1]) for w in tf.unstack(widths))
        strips = (rows < top) | (rows >= 1.0 - bottom) | (cols < left) | (cols >= 1.0 - right)
        x = tf.where(tf.logical_and(chance(config.edge_blanking, 6), strips), random_grey(7), x)
    if config.blur_noise:
        blurred = tf.nn.avg_pool2d(x, 3, 1, "SAME")
        x = tf.where(chance(config.blur_noise, 8), blurred, x)
        sigma = tf.reshape(tf.random.uniform([n], 0.0, NOISE_SIGMA, seed=seed + 9), [-1, 1, 1, 1])
        noise = tf.random.normal(shape, seed=seed + 10) * sigma
        x = tf.where(chance(config.blur_noise, 11), x + noise, x)
    return tf.clip_by_value(x, 0.0, 255.0)

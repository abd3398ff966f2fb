"""The four-branch DeepFER network in Keras, with inputs named as the runtime binds them."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from dfer_edge.geometry import N_FEATURES
from dfer_edge.labels import LABELS
from dfer_edge.model import INPUT_NAMES


def _conv(x, filters: int, stride: int, name: str, bn: bool):
    x = layers.Conv2D(filters, 6, strides=stride, padding="same", use_bias=not bn, name=name)(x)
    if bn:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _crop_branch(inp, part: str, w: int, bn: bool, early: float = 1.0):
    """Conv(16,s3) -> Conv(32,s2) -> eyes: MaxPool -> Conv(64,s2) / mouth: Conv(64,s2) -> MaxPool; 4x4x64.
    `early` widens only the first two convolutions, which are cheap in parameters (the 4x4x64 output and
    everything after it stay the same size)."""
    x = _conv(inp, round(16 * w * early), 3, f"{part}_c1", bn)
    x = _conv(x, round(32 * w * early), 2, f"{part}_c2", bn)
    if part == "mouth":
        x = _conv(x, 64 * w, 2, f"{part}_c3", bn)
        x = layers.MaxPooling2D(2, padding="same", name=f"{part}_pool")(x)
    else:
        x = layers.MaxPooling2D(2, padding="same", name=f"{part}_pool")(x)
        x = _conv(x, 64 * w, 2, f"{part}_c3", bn)
    return x


def build_model(size: int = 96, width: int = 1, dropout: float = 0.3, bn: bool = True,
                feature_mean: np.ndarray | None = None, feature_var: np.ndarray | None = None,
                l2: float = 0.0, branch_width: float = 1.0) -> keras.Model:
    """DEVELOPERS.md's network. `width` multiplies every conv/dense width; the shape stays.

    Feature standardisation lives inside the model (a fixed Normalization layer), so the runtime
    feeds raw features and the model file alone defines what it expects.
    """
    reg = keras.regularizers.l2(l2) if l2 else None
    # Named as the runtime binds them (dfer_edge.model.INPUT_NAMES): right_eye, left_eye, mouth, features.
    eyes_r, eyes_l, mouth = (keras.Input((size, size, 1), name=n) for n in INPUT_NAMES[:3])
    feats = keras.Input((N_FEATURES,), name=INPUT_NAMES[3])

    x = layers.Concatenate(name="crops")([
        _crop_branch(eyes_r, "right_eye", width, bn, branch_width),
        _crop_branch(eyes_l, "left_eye", width, bn, branch_width),
        _crop_branch(mouth, "mouth", width, bn, branch_width),
    ])
    x = _conv(x, 64 * width, 2, "joint_c1", bn)
    x = _conv(x, 32 * width, 2, "joint_c2", bn)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(16 * width, activation="relu", kernel_regularizer=reg, name="img_d1")(x)
    x = layers.Dense(len(LABELS), name="img_out")(x)

    if feature_mean is not None:
        f = layers.Normalization(mean=feature_mean, variance=feature_var, name="feat_norm")(feats)
    else:
        f = feats
    f = layers.Dense(32 * width, activation="relu", kernel_regularizer=reg, name="feat_d1")(f)
    f = layers.Dense(16 * width, activation="relu", kernel_regularizer=reg, name="feat_d2")(f)
    f = layers.Dense(len(LABELS), name="feat_out")(f)

    y = layers.Concatenate(name="merge")([x, f])
    y = layers.Dense(len(LABELS), activation="softmax", name="probabilities")(y)
    return keras.Model([eyes_r, eyes_l, mouth, feats], y, name="dfer")


def build_face_model(size: int = 48, width: float = 1.0, dropout: float = 0.3) -> keras.Model:
    """The whole-face teacher: a small VGG-style CNN (3x3 convolutions, stride-2 downsampling, global
    average pooling; ~0.6M parameters, ~27M multiply-adds at 48 px and width 1) on the levelled whole face
    (convert/wholeface.py). Plain convolutions rather than separable ones: TensorFlow's CPU kernels run
    depthwise convolutions several times slower per multiply-add, and this trains on two cores. It runs
    only in convert/, to make soft targets for the four-branch student; it never ships."""
    from .data import FACE_INPUT

    def conv(x, f: int, stride: int, name: str):
        x = layers.Conv2D(round(f * width), 3, strides=stride, padding="same", use_bias=False, name=name)(x)
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
        return layers.Activation("relu", name=f"{name}_relu")(x)

    inp = keras.Input((size, size, 1), name=FACE_INPUT)
    x = conv(inp, 16, 1, "c0")
    for i, f in enumerate((32, 64, 128)):
        x = conv(x, f, 2, f"c{i + 1}_down")
        x = conv(x, f, 1, f"c{i + 1}")
    x = conv(x, 256, 2, "c4_down")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    y = layers.Dense(len(LABELS), activation="softmax", name="probabilities")(x)
    return keras.Model(inp, y, name="dfer_face_teacher")

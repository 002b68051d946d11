"""The CIFAR-C constants: corruption names, severities and the script's per-severity parameters.

The values of ``make_cifar_c.py`` (Hendrycks & Dietterich, ICLR 2019), unchanged (docs/CORRUPTIONS.md §2);
the frost photographs' names and colour statistics (docs/CORRUPTIONS.md §4).
"""
from __future__ import annotations

__all__ = ["CORRUPTIONS", "EXTRA_CORRUPTIONS", "ALL_CORRUPTIONS", "SEVERITIES", "IMAGE_SIZE"]

#: The 15 benchmark corruptions, in the order the original script generates them.
CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
    "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
    "jpeg_compression",
)
#: The 4 extra ("validation") corruptions, generated after the 15.
EXTRA_CORRUPTIONS: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
#: All 19, benchmark first.
ALL_CORRUPTIONS: tuple[str, ...] = CORRUPTIONS + EXTRA_CORRUPTIONS
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)
#: The image side the constants are written for (CIFAR).
IMAGE_SIZE = 32

_EXTRA_MSG = 'pip install "sagemix[corruptions]"'
_FROST_MSG = "pip install --no-deps imagecorruptions-imaug==1.1.5"
_FROST_SOURCES = ("package", "procedural")

_GAUSSIAN_NOISE = [0.04, 0.06, .08, .09, .10]
_SHOT_NOISE = [500, 250, 100, 75, 50]
_IMPULSE_NOISE = [.01, .02, .03, .05, .07]
_SPECKLE_NOISE = [.06, .1, .12, .16, .2]
_GAUSSIAN_BLUR = [.4, .6, 0.7, .8, 1]
_DEFOCUS_BLUR = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)]
_GLASS_BLUR = [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)]
_MOTION_BLUR = [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)]
_SNOW = [(0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
         (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9), (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
         (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)]
_FROST = [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)]
_FOG = [(.2, 3), (.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)]
_BRIGHTNESS = [.05, .1, .15, .2, .3]
_CONTRAST = [.75, .5, .4, .3, 0.15]
_ELASTIC = [(IMAGE_SIZE * 0, IMAGE_SIZE * 0, IMAGE_SIZE * 0.08),
            (IMAGE_SIZE * 0.05, IMAGE_SIZE * 0.2, IMAGE_SIZE * 0.07),
            (IMAGE_SIZE * 0.08, IMAGE_SIZE * 0.06, IMAGE_SIZE * 0.06),
            (IMAGE_SIZE * 0.1, IMAGE_SIZE * 0.04, IMAGE_SIZE * 0.05),
            (IMAGE_SIZE * 0.1, IMAGE_SIZE * 0.03, IMAGE_SIZE * 0.03)]
_PIXELATE = [0.95, 0.9, 0.85, 0.75, 0.65]
_JPEG = [80, 65, 58, 50, 40]
_SPATTER = [(0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0),
            (0.65, 0.3, 1, 0.69, 0.5, 0), (0.65, 0.1, 0.7, 0.69, 0.6, 1),
            (0.65, 0.1, 0.5, 0.68, 0.6, 1)]
_SATURATE = [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)]

# Frost photographs: the 5 the script can pick (randint(5) never picks frost6.jpg).
_FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")
# Mean / std of the photographs (docs/CORRUPTIONS.md §4), used to tint the procedural textures.
_FROST_TEAL = ((78.0, 149.0, 166.0), (27.0, 17.0, 15.0))
_FROST_WHITE = ((201.0, 205.0, 215.0), (22.0, 22.0, 22.0))

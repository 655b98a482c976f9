"""What an image in a request costs in tokens, read from the request body alone.

Shared by the request sizing (:mod:`keypolicy.estimate`: the runtime's exact count and the
limiter's estimate) and the provider model (:mod:`keypolicy.upstream.requests`: the mock's usage
and its limiter), so both count an image alike. Plain stdlib, no Pillow: an image's size is read
from its header.

How OpenAI counts (the "Calculating costs" section of the images and vision guide,
developers.openai.com/api/docs/guides/images-vision, as of 2025-08):

- **Tiles** (gpt-4o, gpt-4.1, gpt-4o-mini, gpt-5, o3): ``detail: low`` costs the model's base
  tokens. ``high``: scale to fit in 2048×2048, then so that the shortest side is 768px (only ever
  down: a 128×64 image is one tile, as measured on the forum below), count the 512px tiles:
  ``base + per_tile × tiles``. gpt-4o: 1024×1024 is 765 tokens, 2048×4096 is 1105, low is 85.
  Scaled sides are rounded to the nearest pixel (2049×513 is 8 tiles, 2050×513 is 4, as billed:
  community.openai.com/t/vision-pricing-calculator-inaccurate-resizing-rounding-vs-api-costs/1281361).
- **Patches** (gpt-4.1-mini, gpt-4.1-nano, gpt-5-mini, gpt-5-nano, o4-mini): 32px patches that
  cover the image, scaled down to at most 1,536, times the model's multiplier (rounded up here).
  The guide gives these no ``detail`` rule; low and high were measured to cost the same
  (community.openai.com/t/vision-more-than-one-way-to-send-a-request-undocumented-and-different-
  pricing-realized/1262691), so ``detail`` is ignored for them.
- ``detail: auto`` (the default) lets the model choose; it is counted as ``high``, the most it
  can cost.

The rate limiter: the same guide says "we process images at the token level, so each image we
process counts towards your tokens per minute (TPM) limit", so the limiter's estimate adds these
tokens, never the base64 text (a 400,000-character image is not 100,000 tokens, nor 4).
Observed otherwise in one thread (gpt-4o-2024-08-06, Dec 2024: about 770 tokens per image
whatever its size or detail, from ``x-ratelimit-remaining-tokens``:
community.openai.com/t/vision-model-rate-limit-documentation-for-usage-estimate-is-wrong/1076053);
the documented rule is followed until that is confirmed.

An image whose size cannot be read (a remote URL, a file id, data that is not a PNG, JPEG, GIF
or WEBP, or is cut short) is counted at :data:`ASSUMED_SIZE`, and the count says how many were.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from keypolicy.catalog import family

__all__ = [
    "ASSUMED_SIZE",
    "IMAGE_PART_TYPES",
    "VISION_COSTS",
    "ImageSize",
    "ImageTokens",
    "Patches",
    "Tiles",
    "count_images",
    "data_url_size",
    "image_parts",
    "image_size",
    "image_tokens",
    "is_image_part",
    "vision_cost",
]

IMAGE_PART_TYPES: Final = frozenset({"image_url", "input_image"})
"""Content part types that carry an image: chat completions' ``image_url``, the Responses API's
``input_image``."""


@dataclass(frozen=True, slots=True)
class ImageSize:
    """An image's width and height in pixels (both at least 1)."""

    width: int
    height: int


ASSUMED_SIZE: Final = ImageSize(1024, 1024)
"""The size an image is counted at when its own cannot be read: a common photo or scan size,
765 tokens at high detail for gpt-4o (the guide's first example), where any image costs from 255
(one tile) to 1,445 tokens (eight: 768×2048 after scaling)."""


def _half_up(value: float) -> int:
    """Round to the nearest whole pixel, halves up (never below 1)."""
    return max(1, int(value + 0.5))


@dataclass(frozen=True, slots=True)
class Tiles:
    """Tile-based counting: ``base`` tokens, plus ``per_tile`` for each 512px tile at high
    detail."""

    base: int
    per_tile: int

    def tokens(self, size: ImageSize, detail: str) -> int:
        if detail == "low":
            return self.base
        return self.base + self.per_tile * self.tiles(size)

    @staticmethod
    def tiles(size: ImageSize) -> int:
        """512px tiles of the image once fitted in 2048×2048 and its shortest side made 768."""
        w, h = size.width, size.height
        if max(w, h) > 2048:
            scale = 2048 / max(w, h)
            w, h = _half_up(w * scale), _half_up(h * scale)
        if min(w, h) > 768:
            scale = 768 / min(w, h)
            w, h = _half_up(w * scale), _half_up(h * scale)
        return math.ceil(w / 512) * math.ceil(h / 512)


PATCH: Final = 32
PATCH_BUDGET: Final = 1536


@dataclass(frozen=True, slots=True)
class Patches:
    """Patch-based counting: 32px patches (at most 1,536) times ``multiplier``, any detail."""

    multiplier: float

    def tokens(self, size: ImageSize, detail: str) -> int:  # the same for any detail
        return math.ceil(self.patches(size) * self.multiplier - 1e-9)

    @staticmethod
    def patches(size: ImageSize) -> int:
        """The guide's steps A-C: patches covering the image, scaled down to fit the budget."""
        w, h = size.width, size.height
        if math.ceil(w / PATCH) * math.ceil(h / PATCH) > PATCH_BUDGET:
            r = math.sqrt(PATCH * PATCH * PATCH_BUDGET / (w * h))
            across, down = w * r / PATCH, h * r / PATCH
            # Scale again so that one side fits a whole number of patches (at least one).
            r *= min(max(1, math.floor(across)) / across, max(1, math.floor(down)) / down)
            w, h = max(1, math.floor(w * r + 1e-6)), max(1, math.floor(h * r + 1e-6))
        return min(PATCH_BUDGET, math.ceil(w / PATCH) * math.ceil(h / PATCH))


VISION_COSTS: Final[dict[str, Tiles | Patches]] = {
    # The guide's tables, by catalog family (keypolicy.catalog.CATALOG; embeddings take no images).
    "gpt-5": Tiles(70, 140),
    "gpt-5-mini": Patches(1.62),
    "gpt-5-nano": Patches(2.46),
    "gpt-4.1": Tiles(85, 170),
    "gpt-4.1-mini": Patches(1.62),
    "gpt-4.1-nano": Patches(2.46),
    "gpt-4o": Tiles(85, 170),
    "gpt-4o-2024-05-13": Tiles(85, 170),  # "4o" in the guide's table
    "gpt-4o-mini": Tiles(2833, 5667),
    "o3": Tiles(75, 150),
    "o4-mini": Patches(1.72),
}
"""How each model counts image tokens (a dated snapshot counts as its family)."""

DEFAULT_COST: Final = VISION_COSTS["gpt-4o"]
"""For a model the table does not know: gpt-4o's rule, the guide's worked examples (nothing is
documented for it; a wrong guess shows up as a difference in the usage the API reports)."""


def vision_cost(model: str) -> Tiles | Patches:
    """How ``model`` (or its family) counts image tokens."""
    return VISION_COSTS.get(family(model), DEFAULT_COST)


def image_tokens(model: str, size: ImageSize, detail: str = "auto") -> int:
    """Tokens one image of ``size`` costs on ``model`` at ``detail`` (``low``, ``high``;
    anything else, ``auto`` included, counts as ``high``)."""
    return vision_cost(model).tokens(size, "low" if detail == "low" else "high")


# -- sizes from headers -------------------------------------------------------------------------


def _be(data: bytes, start: int, length: int) -> int:
    return int.from_bytes(data[start : start + length], "big")


def _le(data: bytes, start: int, length: int) -> int:
    return int.from_bytes(data[start : start + length], "little")


def _png(data: bytes) -> ImageSize | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return _sized(_be(data, 16, 4), _be(data, 20, 4))


def _gif(data: bytes) -> ImageSize | None:
    return _sized(_le(data, 6, 2), _le(data, 8, 2)) if len(data) >= 10 else None


def _webp(data: bytes) -> ImageSize | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        return _sized(_le(data, 26, 2) & 0x3FFF, _le(data, 28, 2) & 0x3FFF)
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = _le(data, 21, 4)
        return _sized((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X" and len(data) >= 30:
        return _sized(_le(data, 24, 3) + 1, _le(data, 27, 3) + 1)
    return None


_JPEG_FRAMES: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
"""Start-of-frame markers (SOF0-SOF15 but DHT, JPG and DAC), whose segment holds the size."""


def _jpeg(data: bytes) -> ImageSize | None:
    """Walk the segments after SOI to the first frame header: height, then width."""
    i, end = 2, len(data)
    while i + 4 <= end:
        if data[i] != 0xFF:
            return None  # not a marker where one must be: not a JPEG after all
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
        elif marker in (0xD9, 0xDA):  # end of image, or scan data, before any frame header
            return None
        elif marker in _JPEG_FRAMES:
            return _sized(_be(data, i + 7, 2), _be(data, i + 5, 2)) if i + 9 <= end else None
        else:
            length = _be(data, i + 2, 2)
            if length < 2:
                return None
            i += 2 + length
    return None


def _sized(width: int, height: int) -> ImageSize | None:
    return ImageSize(width, height) if width > 0 and height > 0 else None


def image_size(data: bytes) -> ImageSize | None:
    """The size a PNG, JPEG, GIF or WEBP file states in its header, from its first bytes;
    ``None`` for anything else, or too few bytes to tell. Never raises."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg(data)
    if data.startswith((b"GIF87a", b"GIF89a")):
        return _gif(data)
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return _webp(data)
    return None


HEAD_CHARS: Final = 64 * 1024
"""Base64 characters decoded first (48 KiB): every header but a JPEG's behind large metadata
segments (EXIF, ICC profiles) is in them; for such a JPEG the whole image is decoded."""


def _decode(text: str) -> bytes:
    """Base64 ``text`` (possibly cut anywhere, with whitespace) as bytes; ``b""`` if it is not
    base64."""
    text = "".join(text.split())
    text = text[: len(text) - len(text) % 4]
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or characters outside ASCII
        return b""


def data_url_size(url: str) -> ImageSize | None:
    """The size of the image in a ``data:image/...;base64,...`` URL, from its header; ``None``
    for any other URL or data that is not a readable image. Never raises."""
    if not url.startswith("data:"):
        return None
    header, comma, payload = url.partition(",")
    if not comma or not header.lower().endswith(";base64"):
        return None
    head = _decode(payload[:HEAD_CHARS])
    size = image_size(head)
    if size is None and head.startswith(b"\xff\xd8") and len(payload) > HEAD_CHARS:
        size = image_size(_decode(payload))
    return size


# -- images in a request ------------------------------------------------------------------------


def is_image_part(value: Any) -> bool:
    """Whether ``value`` is a content part carrying an image."""
    kind = value.get("type") if isinstance(value, Mapping) else None
    return isinstance(kind, str) and kind in IMAGE_PART_TYPES


def image_parts(value: Any) -> Iterator[Mapping[str, Any]]:
    """Every image part in chat messages, Responses API input items, a content list, or one of
    them (anything else yields nothing)."""
    if isinstance(value, list):
        for item in value:
            yield from image_parts(item)
    elif is_image_part(value):
        yield value
    elif isinstance(value, Mapping) and "content" in value:
        yield from image_parts(value["content"])


def _url_and_detail(part: Mapping[str, Any]) -> tuple[str, str]:
    """The image URL and detail of a part: chat's ``{"image_url": {"url", "detail"}}`` or the
    Responses API's ``{"image_url": "...", "detail": ...}`` (or a ``file_id``: no URL)."""
    image, detail = part.get("image_url"), part.get("detail")
    if isinstance(image, Mapping):
        detail = image.get("detail", detail)
        image = image.get("url")
    return (image if isinstance(image, str) else ""), (detail if isinstance(detail, str) else "")


@dataclass(frozen=True, slots=True)
class ImageTokens:
    """The images of one request: the tokens they cost, how many there were, and how many of
    them were counted at an assumed size because theirs could not be read."""

    tokens: int = 0
    images: int = 0
    assumed: int = 0


def count_images(
    model: str, parts: Iterable[Mapping[str, Any]], assumed_size: ImageSize = ASSUMED_SIZE
) -> ImageTokens:
    """Tokens of the image ``parts`` of a request to ``model``; an image whose size cannot be
    read from its data URL counts as ``assumed_size``."""
    cost = vision_cost(model)
    tokens = images = assumed = 0
    for part in parts:
        url, detail = _url_and_detail(part)
        size = data_url_size(url)
        if size is None:
            size, assumed = assumed_size, assumed + 1
        tokens += cost.tokens(size, "low" if detail == "low" else "high")
        images += 1
    return ImageTokens(tokens, images, assumed)

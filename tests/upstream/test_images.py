"""Image tokens: the documented formulas, the size read from an image's header, and the images of
a request body (shared by the request sizing and the provider model)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keypolicy.catalog import CATALOG
from keypolicy.images import (
    ASSUMED_SIZE,
    HEAD_CHARS,
    VISION_COSTS,
    ImageSize,
    ImageTokens,
    Patches,
    Tiles,
    count_images,
    data_url_size,
    image_parts,
    image_size,
    image_tokens,
)
from tests.image_files import FORMATS, data_url, jpeg, png, segment

# -- the formulas -------------------------------------------------------------------------------


def test_the_guides_worked_examples_for_gpt_4o() -> None:
    assert image_tokens("gpt-4o", ImageSize(1024, 1024), "high") == 765  # 768x768: 4 tiles
    assert image_tokens("gpt-4o", ImageSize(2048, 4096), "high") == 1105  # 768x1536: 6 tiles
    assert image_tokens("gpt-4o", ImageSize(4096, 8192), "low") == 85
    assert image_tokens("gpt-4o", ImageSize(1024, 1024), "auto") == 765  # auto counts as high
    assert image_tokens("gpt-4o", ImageSize(1024, 1024)) == 765


def test_tiles_never_scale_up_and_round_to_the_nearest_pixel() -> None:
    assert Tiles.tiles(ImageSize(128, 64)) == 1  # measured: one tile, not scaled up to 768
    assert Tiles.tiles(ImageSize(512, 512)) == 1
    assert Tiles.tiles(ImageSize(513, 512)) == 2
    # As billed: 2049x513 fits 2048x512.75 -> 513 (8 tiles), 2050x513 -> 512 (4 tiles).
    assert Tiles.tiles(ImageSize(2049, 513)) == 8
    assert Tiles.tiles(ImageSize(2050, 513)) == 4
    assert Tiles.tiles(ImageSize(768, 2048)) == 8  # the most gpt-4o counts: 1,445 tokens
    assert Tiles.tiles(ImageSize(1, 100_000)) == 4  # a sliver keeps a side of one pixel


def test_patches_follow_the_guides_steps() -> None:
    assert Patches.patches(ImageSize(1024, 1024)) == 1024
    assert Patches.patches(ImageSize(1800, 2400)) == 1452  # scaled to 1056x1408: 33 x 44
    assert Patches.patches(ImageSize(100_000, 1)) == 1536  # never above the budget
    assert Patches.patches(ImageSize(1, 1)) == 1


def test_each_model_counts_by_its_own_rule() -> None:
    square = ImageSize(1024, 1024)
    assert image_tokens("gpt-4o-mini", square, "high") == 2833 + 4 * 5667
    assert image_tokens("gpt-4o-mini", square, "low") == 2833
    assert image_tokens("gpt-5", square, "high") == 70 + 4 * 140
    assert image_tokens("o3", square, "low") == 75
    assert image_tokens("gpt-4.1", square, "high") == 765
    assert image_tokens("gpt-4.1-mini", square, "high") == 1659  # 1024 x 1.62, rounded up
    assert image_tokens("gpt-4.1-mini", square, "low") == 1659  # detail does not matter
    assert image_tokens("o4-mini", square) == 1762  # 1024 x 1.72
    assert image_tokens("gpt-5-nano", ImageSize(1800, 2400)) == 3572  # 1452 x 2.46
    # A dated snapshot counts as its family; an unknown model as gpt-4o.
    assert image_tokens("gpt-4o-mini-2024-07-18", square, "low") == 2833
    assert image_tokens("some-future-model", square) == 765


def test_every_catalog_model_that_takes_images_has_a_rule() -> None:
    chat_models = {name for name, info in CATALOG.items() if info.max_output > 0}
    assert chat_models == set(VISION_COSTS), "add the new model's image rule to VISION_COSTS"


# -- sizes from headers -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FORMATS)
def test_every_format_states_its_size(kind: str) -> None:
    make = FORMATS[kind]
    assert image_size(make(300, 200)) == ImageSize(300, 200)
    assert image_size(make(1, 16_383)) == ImageSize(1, 16_383)  # WEBP's widest is 16,383
    assert data_url_size(data_url(make(640, 480))) == ImageSize(640, 480)


@pytest.mark.parametrize("kind", FORMATS)
def test_a_truncated_file_gives_no_size_and_never_raises(kind: str) -> None:
    data = FORMATS[kind](300, 200)
    sizes = {image_size(data[:cut]) for cut in range(len(data))}
    assert sizes <= {None, ImageSize(300, 200)}  # cut short: no size, never a wrong one
    assert image_size(data[:9]) is None  # GIF, the shortest header, needs 10 bytes


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not an image at all",
        b"\x89PNG\r\n\x1a\n" + bytes(30),  # no IHDR
        png(0, 10),  # a zero side
        b"\xff\xd8\x00\x00\x00\x00\x00\x00",  # no marker after SOI
        b"\xff\xd8\xff\xe0\x00\x01" + bytes(10),  # a segment length below 2
        b"\xff\xd8\xff\xda\x00\x08" + bytes(20),  # scan data before any frame header
        b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(30),  # no VP8 start code
        b"RIFF\x00\x00\x00\x00WEBPALPH" + bytes(30),  # an unknown first chunk
    ],
)
def test_garbage_gives_no_size(data: bytes) -> None:
    assert image_size(data) is None


@given(st.binary(max_size=200))
def test_any_bytes_give_a_size_or_none(data: bytes) -> None:
    size = image_size(data)
    assert size is None or (size.width > 0 and size.height > 0)


@given(st.text(max_size=200))
def test_any_url_gives_a_size_or_none(tail: str) -> None:
    for url in (tail, "data:" + tail, "data:image/png;base64," + tail):
        data_url_size(url)  # never raises


def test_data_urls_that_cannot_be_read() -> None:
    assert data_url_size("https://example.com/xray.png") is None
    assert data_url_size("data:image/png;base64") is None  # no comma
    assert data_url_size("data:image/svg+xml,<svg width='10' height='10'/>") is None  # not base64
    assert data_url_size("data:image/png;base64,***not base64***") is None
    assert data_url_size("data:image/png;base64,é" + "A" * 40) is None


def test_base64_with_line_breaks_and_a_cut_tail_is_read() -> None:
    text = base64.encodebytes(png(300, 200)).decode()  # MIME base64: a newline every 76
    assert data_url_size("data:image/png;base64," + text) == ImageSize(300, 200)
    assert data_url_size("data:image/png;base64," + text[:-3]) == ImageSize(300, 200)


def test_a_jpeg_whose_header_is_far_from_its_start_is_read_whole() -> None:
    exif = b"Exif\x00\x00" + bytes(60_000)  # a large EXIF block, then an ICC profile
    data = jpeg(4000, 3000, app1=exif)
    data = data[:2] + segment(0xE2, b"ICC_PROFILE\x00" + bytes(60_000)) + data[2:]
    assert len(base64.b64encode(data)) > HEAD_CHARS
    assert data_url_size(data_url(data, "image/jpeg")) == ImageSize(4000, 3000)


# -- the images of a request --------------------------------------------------------------------


def test_chat_and_responses_parts_are_both_counted() -> None:
    big = data_url(png(2048, 4096))
    chat = [
        {"role": "system", "content": "You read x-rays."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare:"},
                {"type": "image_url", "image_url": {"url": big, "detail": "high"}},
                {"type": "image_url", "image_url": {"url": big, "detail": "low"}},
            ],
        },
    ]
    assert count_images("gpt-4o", image_parts(chat)) == ImageTokens(1105 + 85, 2, 0)
    responses = [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Compare:"},
                {"type": "input_image", "image_url": big},
                {"type": "input_image", "file_id": "file-abc", "detail": "low"},
            ],
        }
    ]
    assert count_images("gpt-4o", image_parts(responses)) == ImageTokens(1105 + 85, 2, 1)


def test_an_image_whose_size_is_unknown_counts_at_the_assumed_size_and_says_so() -> None:
    parts = [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]
    assert ImageSize(1024, 1024) == ASSUMED_SIZE
    assert count_images("gpt-4o", parts) == ImageTokens(765, 1, 1)
    assert count_images("gpt-4o", parts, ImageSize(512, 512)) == ImageTokens(255, 1, 1)


@pytest.mark.parametrize(
    "body",
    [None, "text", 5, [None, 3, "x"], [{"type": ["image_url"]}], [{"content": {"type": 1}}]],
)
def test_malformed_content_has_no_images(body: object) -> None:
    assert list(image_parts(body)) == []

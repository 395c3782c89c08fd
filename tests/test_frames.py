import io
import warnings

import numpy as np
import pytest
from PIL import Image

from teachable.frames import (
    ImageError,
    as_rgb_uint8,
    center_square,
    decode_image,
    encode_jpeg,
    load_image,
    standard_thumbnail,
)

from .conftest import photo


def save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path


@pytest.mark.parametrize(
    ("make", "mode"),
    [
        (lambda: Image.fromarray(photo("coffee")).convert("L"), "grayscale"),
        (lambda: Image.fromarray(photo("coffee")).convert("RGBA"), "rgba"),
        (lambda: Image.fromarray(photo("coffee")).convert("CMYK"), "cmyk"),
        (lambda: Image.fromarray((photo("camera").astype(np.uint16) * 257)), "16-bit"),
        (lambda: Image.fromarray(photo("coffee")).convert("P"), "palette"),
    ],
)
def test_image_modes_become_rgb_uint8(make, mode, tmp_path):
    suffix = ".jpg" if mode == "cmyk" else ".png"
    rgb = load_image(save(make(), tmp_path / f"{mode}{suffix}"))
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.flags.c_contiguous
    assert rgb.std() > 10  # real content survived the conversion


def test_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (40, 30), colour) for colour in ["red", "blue"]]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    rgb = load_image(tmp_path / "a.gif")
    assert rgb.shape == (30, 40, 3) and tuple(rgb[0, 0]) == (255, 0, 0)


BAD_FILES = {
    "zero bytes": (lambda p: p.write_bytes(b""), "empty"),
    "text named jpg": (lambda p: p.write_text("hello, not a picture"), "not an image"),
    "truncated jpeg": (lambda p: p.write_bytes(encode_jpeg(photo("coffee"))[:2000]), "could not be decoded"),
    "corrupt bytes": (
        lambda p: p.write_bytes(b"\xff\xd8\xff" + bytes(range(256)) * 20),
        "not an image|could not be decoded",
    ),
    "huge png": (lambda p: Image.new("1", (20000, 20000)).save(p, format="PNG"), "limit is"),
    "tiny": (lambda p: Image.new("RGB", (1, 1)).save(p, format="PNG"), "at least 16x16"),
    "mp4 named jpg": (lambda p: p.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 500), "not an image"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_image_files_get_a_clear_error(case, tmp_path):
    write, message = BAD_FILES[case]
    path = tmp_path / "x.jpg"
    write(path)
    with pytest.raises(ImageError, match=message):
        load_image(path)
    with pytest.raises(ImageError, match=message):
        decode_image(path.read_bytes())


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (np.zeros((1, 1, 3), np.uint8), "at least"),
        (np.zeros((4000, 3000, 5), np.uint8), "HxWx3"),
        (np.zeros((20, 20, 3), np.complex64), "Unsupported"),
        (np.full((20, 20, 3), np.nan, np.float32), "NaN"),
        ("not an array", "Expected an image array"),
        (np.zeros((9000, 9000), np.uint8), "limit"),
    ],
)
def test_bad_frames(frame, message):
    with pytest.raises(ImageError, match=message):
        as_rgb_uint8(frame)


def test_large_and_odd_frames_are_cropped_to_the_centre():
    frame = np.zeros((3000, 4000, 3), np.uint8)
    frame[:, 500:3500] = 255  # the centre square is white, the side bands black
    square = center_square(as_rgb_uint8(frame), 224)
    assert square.shape == (224, 224, 3) and square.min() == 255
    assert center_square(as_rgb_uint8(np.zeros((16, 40), np.uint8)), 224).shape == (224, 224, 3)


def _encoded(image: Image.Image, format: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **kwargs)
    return buffer.getvalue()


def test_pil_itself_refuses_images_over_the_limit_before_decoding():
    """Libraries that decode uploads with PIL before the app sees them (the web framework) meet the app's own limit:
    56 megapixels is over it (PIL's default guard let up to 178 through, and the first fix up to 100)."""
    small_file = _encoded(Image.new("1", (8_000, 7_000)), "PNG")  # 56 megapixels in a few kilobytes
    assert len(small_file) < 100_000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(small_file))
    with pytest.raises(ImageError, match="limit is 50,000,000 pixels"):
        decode_image(small_file)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(_encoded(Image.new("1", (7_000, 7_000)), "PNG"))) as allowed:  # 49 megapixels
            assert allowed.size == (7_000, 7_000)


def test_decode_checks_the_header_against_the_callers_pixel_limit():
    data = _encoded(Image.fromarray(photo("coffee")), "PNG")  # 600x400
    assert decode_image(data).shape == (400, 600, 3)
    with pytest.raises(ImageError, match="600x400; the limit is 100,000 pixels"):
        decode_image(data, "thumb", max_pixels=100_000)


def test_decode_refuses_more_bytes_than_the_file_limit(monkeypatch):
    monkeypatch.setattr("teachable.frames.MAX_FILE_BYTES", 1000)
    with pytest.raises(ImageError, match="the limit is 0 MB"):
        decode_image(encode_jpeg(photo("coffee")))


@pytest.mark.parametrize("format", ["TIFF", "ICO", "PPM"])
def test_formats_outside_the_supported_list_are_not_decoded(format):
    data = _encoded(Image.fromarray(photo("coffee")).resize((64, 64)), format)
    with pytest.raises(ImageError, match="not an image file"):
        decode_image(data)


def test_standard_thumbnail_keeps_plain_ones_and_reencodes_padded_or_large_ones():
    plain = encode_jpeg(center_square(photo("coffee"), 224))
    assert standard_thumbnail(plain, 224, 1024) is plain or standard_thumbnail(plain, 224, 1024) == plain
    padded = plain + bytes(2**20)
    fixed = standard_thumbnail(padded, 224, 1024)
    assert len(fixed) < 224 * 224 * 3 and decode_image(fixed).shape == (224, 224, 3)
    wide = standard_thumbnail(encode_jpeg(photo("coffee")), 224, 1024)
    assert decode_image(wide).shape == (224, 224, 3)
    with pytest.raises(ImageError, match="limit is 10,000 pixels"):
        standard_thumbnail(plain, 224, 100)
    with pytest.raises(ImageError):
        standard_thumbnail(b"\xff\xd8\xff" + bytes(range(256)) * 4, 224, 1024)

"""Reading odd, damaged and hostile image files: upright RGB or a clear one-line refusal, never a crash."""

import numpy as np
import pytest
from PIL import Image

from vitviz.errors import ImageLoadError
from vitviz.images import MAX_WORKING_SIDE, load_image

from .hardening_cases import exif_rotated


def _gradient(w=60, h=40):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 4, y * 6, (x + y) * 2], axis=-1).clip(0, 255).astype(np.uint8)


def _refused(path, match):
    with pytest.raises(ImageLoadError, match=match) as info:
        load_image(path)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    _refused(p, "empty")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files(tmp_path, fmt):
    p = tmp_path / f"cut.{fmt.lower()}"
    Image.fromarray(_gradient(200, 200)).save(p, fmt)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    _refused(p, "damaged or truncated")


def test_text_file_named_jpg(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("just some text")
    _refused(p, "not an image file")


def test_directory_and_missing_path(tmp_path):
    _refused(tmp_path, "is a folder")
    _refused(tmp_path / "nope.png", "no such file")


def test_path_with_spaces_and_non_ascii(tmp_path):
    folder = tmp_path / "mes images é 日本"
    folder.mkdir()
    p = folder / "photo d'été ü.png"
    Image.fromarray(_gradient()).save(p)
    loaded = load_image(p)
    assert loaded.image.size == (60, 40)


def test_decompression_bomb_is_refused_with_reason(tmp_path):
    p = tmp_path / "bomb.png"
    Image.new("1", (14000, 14000)).save(p)  # 196 Mpx: above Pillow's hard limit, a tiny file
    assert p.stat().st_size < 1_000_000
    _refused(p, "decompression bomb")
    assert Image.MAX_IMAGE_PIXELS is not None  # the limit stays on


def test_enormous_legal_jpeg_is_downscaled(tmp_path):
    p = tmp_path / "huge.jpg"
    Image.new("L", (12000, 9000), 128).save(p, quality=50)
    loaded = load_image(p)
    assert max(loaded.image.size) <= MAX_WORKING_SIDE
    assert loaded.original_size == (12000, 9000)
    assert loaded.image.mode == "RGB"
    assert any("downscaled from 12000x9000" in n for n in loaded.notices)


@pytest.mark.parametrize("size", [(1, 1), (3, 5000), (5000, 3), (7, 5)])
def test_tiny_and_extreme_aspect_images(tmp_path, size):
    p = tmp_path / "odd.png"
    Image.new("RGB", size, (10, 200, 30)).save(p)
    loaded = load_image(p)
    assert loaded.image.mode == "RGB" and min(loaded.image.size) >= 1
    assert loaded.image.getpixel((0, 0)) == (10, 200, 30)


def test_grayscale_and_16_bit(tmp_path):
    p = tmp_path / "gray.png"
    Image.fromarray(np.full((8, 8), 77, np.uint8)).save(p)
    assert load_image(p).image.getpixel((0, 0)) == (77, 77, 77)
    p16 = tmp_path / "gray16.png"
    arr = np.linspace(1000, 61000, 64, dtype=np.uint16).reshape(8, 8)
    Image.fromarray(arr).save(p16)
    loaded = load_image(p16)
    rgb = np.asarray(loaded.image)
    assert rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255  # stretched over its own range, not clipped to 8 bits
    assert any("rescaled" in n for n in loaded.notices)


def test_cmyk_jpeg(tmp_path):
    p = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(p)  # pure red in CMYK
    r, g, b = load_image(p).image.getpixel((8, 8))
    assert r > 200 and g < 60 and b < 60


def test_palette_png_with_transparency(tmp_path):
    p = tmp_path / "pal.png"
    img = Image.new("P", (10, 10), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.info["transparency"] = 0
    img.putpixel((0, 0), 0)
    img.save(p, transparency=0)
    loaded = load_image(p)
    assert loaded.image.getpixel((0, 0)) == (255, 255, 255)  # transparent -> white
    assert loaded.image.getpixel((5, 5)) == (255, 0, 0)


@pytest.mark.parametrize("mode, value", [("RGBA", (0, 0, 255, 0)), ("LA", (0, 0))])
def test_alpha_is_composited_on_white(tmp_path, mode, value):
    p = tmp_path / f"alpha_{mode}.png"
    Image.new(mode, (6, 6), value).save(p)
    assert load_image(p).image.getpixel((3, 3)) == (255, 255, 255)


def test_exif_rotated_jpeg_is_upright(tmp_path):
    # Stored landscape 40x20: left half red, right half blue; orientation 6 = the camera was turned 90 degrees.
    loaded = load_image(exif_rotated(tmp_path))
    assert loaded.image.size == (20, 40)  # shown upright: portrait
    assert loaded.original_size == (20, 40)
    top, bottom = loaded.image.getpixel((10, 5)), loaded.image.getpixel((10, 35))
    assert top[0] > 200 and top[2] < 60  # red ends on top after a 90 degree clockwise turn
    assert bottom[2] > 200 and bottom[0] < 60
    assert any("EXIF" in n for n in loaded.notices)


def test_animated_gif_uses_first_frame(tmp_path):
    p = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (8, 8), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=100)
    loaded = load_image(p)
    assert loaded.image.getpixel((4, 4))[0] > 200
    assert any("3 frames" in n and "first" in n for n in loaded.notices)


def test_multipage_tiff_uses_first_page(tmp_path):
    p = tmp_path / "pages.tif"
    pages = [Image.new("RGB", (8, 8), c) for c in [(0, 0, 255), (255, 0, 0)]]
    pages[0].save(p, save_all=True, append_images=pages[1:])
    loaded = load_image(p)
    assert loaded.image.getpixel((4, 4)) == (0, 0, 255)
    assert any("2 frames" in n for n in loaded.notices)


def test_webp(tmp_path):
    p = tmp_path / "pic.webp"
    Image.fromarray(_gradient()).save(p, lossless=True)
    assert np.array_equal(np.asarray(load_image(p).image), _gradient())


def test_image_arrays_of_any_common_type_become_the_picture_they_show():
    from vitviz.images import as_loaded as _as_loaded
    from vitviz.errors import ImageLoadError

    grey = np.linspace(0.0, 1.0, 12, dtype=np.float32).reshape(3, 4)  # a float image in 0-1, as scikit-image gives
    rgb = np.asarray(_as_loaded(grey).image)
    assert rgb.shape == (3, 4, 3) and rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255  # not all black
    deep = np.full((2, 2, 3), 65535, dtype=np.uint16)
    loaded = _as_loaded(deep)
    assert np.asarray(loaded.image).min() == 255 and "16-bit" in loaded.notices[0]  # not wrapped around to 255 % 256
    assert np.asarray(_as_loaded(np.eye(3, dtype=bool)).image)[0, 0, 1] == 255
    with pytest.raises(ImageLoadError, match="NaN"):
        _as_loaded(np.full((2, 2), np.nan))
    with pytest.raises(ImageLoadError, match="shape"):
        _as_loaded(np.zeros((0, 5, 3), np.uint8))

"""What counts as the same clip (line endings, image encoding), what counts as secret, and the [clipboard] table."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from noizylab_desktop.core.errors import ClipboardError, ConfigError
from noizylab_desktop.core.settings_schema import parse_section
from noizylab_desktop.services.clipboard.content import Clip, clip_hash, to_png, with_plain_text
from noizylab_desktop.services.clipboard.markers import is_secret, native_name, secret_in
from noizylab_desktop.services.clipboard.settings import ClipboardSettings


def png(image: Image.Image, **options: int) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", **options)
    return out.getvalue()


def test_crlf_lf_and_cr_text_hash_the_same_but_different_words_do_not() -> None:
    assert clip_hash(Clip(text="a\r\nb\r\n")) == clip_hash(Clip(text="a\nb\n")) == clip_hash(Clip(text="a\rb\r"))
    assert clip_hash(Clip(html="<p>\r\n</p>")) == clip_hash(Clip(html="<p>\n</p>"))
    assert clip_hash(Clip(text="a\nb")) != clip_hash(Clip(text="a\nc"))
    assert clip_hash(Clip(text="ab")) != clip_hash(Clip(html="ab")), "text and HTML are different formats"


def test_a_re_encoded_png_hashes_the_same_and_other_pixels_do_not() -> None:
    image = Image.new("RGB", (40, 30), (10, 200, 30))
    fast, small = png(image, compress_level=0), png(image, compress_level=9)
    assert fast != small
    assert clip_hash(Clip(png=fast)) == clip_hash(Clip(png=small))
    image.putpixel((3, 3), (0, 0, 0))
    assert clip_hash(Clip(png=png(image))) != clip_hash(Clip(png=fast))
    bmp = io.BytesIO()
    image.save(bmp, format="BMP")
    assert clip_hash(Clip(png=to_png(bmp.getvalue()))) == clip_hash(Clip(png=png(image)))


def test_a_broken_image_is_a_one_line_clipboard_error() -> None:
    with pytest.raises(ClipboardError, match="not a readable PNG"):
        clip_hash(Clip(png=b"\x89PNG not really"))


def test_clip_size_and_kinds() -> None:
    clip = Clip(text="é", html="<b>", png=b"123")
    assert clip.size == 2 + 3 + 3
    assert clip.kinds() == ["text", "html", "image"]
    assert Clip().empty and not clip.empty


@pytest.mark.parametrize(
    ("values", "secret"),
    [
        ({"UTF8_STRING": b"pw", "x-kde-passwordManagerHint": b"secret"}, True),
        ({"UTF8_STRING": b"pw", "x-kde-passwordManagerHint": b"public"}, False),
        ({"public.utf8-plain-text": b"pw", "org.nspasteboard.ConcealedType": b""}, True),
        ({"public.utf8-plain-text": b"pw", "org.nspasteboard.TransientType": b""}, True),
        ({'application/x-qt-mime-type-name;value="org.nspasteboard.ConcealedType"': b""}, True),
        ({"CF_UNICODETEXT": b"pw", "ExcludeClipboardContentFromMonitorProcessing": b""}, True),
        ({'application/x-qt-windows-mime;value="ExcludeClipboardContentFromMonitorProcessing"': b""}, True),
        ({"CF_UNICODETEXT": b"pw", "CanIncludeInClipboardHistory": (0).to_bytes(4, "little")}, True),
        ({"CF_UNICODETEXT": b"pw", "CanIncludeInClipboardHistory": (1).to_bytes(4, "little")}, False),
        ({'application/x-qt-windows-mime;value="CanIncludeInClipboardHistory"': b"\0\0\0\0"}, True),
        ({"text/plain": b"just text", "text/html": b"<b>x</b>"}, False),
    ],
)
def test_password_manager_markers_of_every_platform(values: dict[str, bytes], secret: bool) -> None:
    assert secret_in(values) is secret


def test_only_marker_formats_are_read() -> None:
    read: list[str] = []
    formats = ["text/plain", "image/png", "x-kde-passwordManagerHint"]
    assert is_secret(formats, lambda fmt: read.append(fmt) or b"secret")
    assert read == ["x-kde-passwordManagerHint"]
    assert native_name('application/x-qt-windows-mime;value="Foo"') == "Foo"


def test_clipboard_settings_defaults_and_one_line_errors() -> None:
    assert parse_section(ClipboardSettings, {}) == ClipboardSettings(
        max_bytes=10 * 1024 * 1024, paused=False, backend="auto", poll_s=0.25
    )
    assert parse_section(ClipboardSettings, {"max_bytes": 2048, "paused": True}).paused is True
    for table, fragment in [
        ({"max_bytes": "big"}, "max_bytes must be a whole number of bytes"),
        ({"max_bytes": 10}, "max_bytes must be a whole number of bytes"),
        ({"paused": "yes"}, "paused must be true or false"),
        ({"backend": "wayland"}, "backend must be one of auto, x11, pyperclip"),
        ({"poll_s": 0}, "poll_s must be a number of seconds from 0.05 to 10"),
        ({"maxbytes": 1}, "unknown setting clipboard.maxbytes"),
    ]:
        with pytest.raises(ConfigError, match=fragment.replace("[", r"\[").replace("]", r"\]")) as caught:
            parse_section(ClipboardSettings, table)
        assert "\n" not in caught.value.message


def test_html_without_text_gets_a_plain_version_and_hashes_like_the_pair() -> None:
    clip = with_plain_text(Clip(html="<p>rich <b>text</b></p><p>second&amp;line<br>third</p><script>x()</script>"))
    assert clip.text == "rich text\nsecond&line\nthird"
    assert with_plain_text(Clip(text="kept", html="<b>other</b>")).text == "kept"
    assert clip_hash(with_plain_text(Clip(html="<i>a</i>"))) == clip_hash(Clip(text="a", html="<i>a</i>"))

"""What travels: a clip's formats, normalised and hashed so that the same content never echoes back."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser

from noizylab_desktop.core.errors import ClipboardError

# The formats the grid carries; names are the MIME types every platform's clipboard maps to.
TEXT = "text/plain"
HTML = "text/html"
PNG = "image/png"


@dataclass(frozen=True)
class Clip:
    """One copy's content: any of text, HTML and a PNG image."""

    text: str = ""
    html: str = ""
    png: bytes = field(default=b"", repr=False)

    @property
    def empty(self) -> bool:
        return not (self.text or self.html or self.png)

    @property
    def size(self) -> int:
        """Bytes on the wire, for the size cap."""
        return len(self.text.encode()) + len(self.html.encode()) + len(self.png)

    def kinds(self) -> list[str]:
        """The formats present, in words for people: ``["text", "html"]``."""
        return [name for name, value in (("text", self.text), ("html", self.html), ("image", self.png)) if value]


def normalise_text(text: str) -> str:
    """LF line endings: Windows turns LF into CRLF on paste and back, which must not count as a new copy."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def image_digest(png: bytes) -> bytes:
    """SHA-256 of the decoded pixels, so a re-encoded PNG (another zlib level, metadata) hashes the same."""
    from PIL import Image, UnidentifiedImageError  # here: a node imports this module at start, Pillow only for images

    try:
        with Image.open(io.BytesIO(png)) as image:
            image.load()
            pixels = image.convert("RGBA")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ClipboardError(f"the clipboard image is not a readable PNG ({exc}): copy it again") from exc
    digest = hashlib.sha256(f"{pixels.width}x{pixels.height}".encode())
    digest.update(pixels.tobytes())
    return digest.digest()


def clip_hash(clip: Clip) -> bytes:
    """SHA-256 over the normalised content; blocks on large images, so call it from a worker thread."""
    digest = hashlib.sha256()
    for part in (normalise_text(clip.text).encode(), normalise_text(clip.html).encode()):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    digest.update(image_digest(clip.png) if clip.png else b"")
    return digest.digest()


def to_png(data: bytes) -> bytes:
    """Any image Pillow reads, as PNG (platform clipboards hand out BMP/TIFF too)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format == "PNG":
                return data
            out = io.BytesIO()
            image.save(out, format="PNG")
            return out.getvalue()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ClipboardError(f"the clipboard image cannot be read ({exc}): copy it again") from exc


class _TextOf(HTMLParser):
    """The text of an HTML fragment, with line breaks where blocks end."""

    BREAKS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "br":
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag in self.BREAKS and tag != "br":
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def with_plain_text(clip: Clip) -> Clip:
    """``clip`` with a plain-text version of its HTML when it has none, so a paste into a plain editor works."""
    if clip.text or not clip.html:
        return clip
    parser = _TextOf()
    parser.feed(clip.html)
    parser.close()
    return replace(clip, text="".join(parser.parts).strip())

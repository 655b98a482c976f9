"""How much of each page of a PDF (as Chromium prints it) is covered: a small reader of the
page content streams, enough to place every rectangle and run of text on its page.

Chromium (Skia) writes each page as one Flate-compressed content stream of ``q``/``Q``
(save, restore), ``cm`` (transform), ``re`` (rectangle) and ``BT .. Tm .. ET`` (text); this
follows the transforms and records the vertical extent of what is drawn, ignoring the page's
white background. Enough for tests ("no page is nearly empty"), not a PDF library.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Page", "pages"]

_OBJECT = re.compile(rb"(\d+) 0 obj(.*?)endobj", re.S)
_STREAM = re.compile(rb"stream\r?\n(.*?)\r?\nendstream", re.S)
_TOKEN = re.compile(rb"\[|\]|<[^>]*>|\([^)]*\)|/[^\s/\[\]<>()]+|[^\s\[\]<>()/]+")

Matrix = tuple[float, float, float, float, float, float]
_PAINT = {"f", "f*", "F", "S", "s", "B", "B*", "b", "b*"}


@dataclass(frozen=True, slots=True)
class Page:
    """One page: its height (points) and the vertical extent of what is drawn on it."""

    height: float
    top: float  # from the top of the page, points (the page height when nothing is drawn)
    bottom: float

    @property
    def filled(self) -> float:
        """The share of the page's height between the first and the last mark (0 to 1)."""
        return max(self.bottom - self.top, 0.0) / self.height


def _times(a: Matrix, b: Matrix) -> Matrix:
    """``a`` then ``b`` (PDF's row-vector convention: a point is p·a·b)."""
    return (
        a[0] * b[0] + a[1] * b[2],
        a[0] * b[1] + a[1] * b[3],
        a[2] * b[0] + a[3] * b[2],
        a[2] * b[1] + a[3] * b[3],
        a[4] * b[0] + a[5] * b[2] + b[4],
        a[4] * b[1] + a[5] * b[3] + b[5],
    )


def _y(m: Matrix, x: float, y: float) -> float:
    return x * m[1] + y * m[3] + m[5]


class _Reader:
    """Follows one content stream: the transform and fill colour (saved and restored), and
    the y of every painted rectangle and placed run of text."""

    def __init__(self, width: float, height: float) -> None:
        self.width, self.height = width, height
        self.ctm: Matrix = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
        self.white = False  # the fill colour: white paint on white paper draws nothing
        self.stack: list[tuple[Matrix, bool]] = []
        self.path: list[float] = []  # rectangles waiting for a paint (kept) or a clip (dropped)
        self.ys: list[float] = []

    def op(self, name: str, args: list[float]) -> None:
        """Carry out one operator with the numbers before it."""
        if name == "q":
            self.stack.append((self.ctm, self.white))
        elif name == "Q" and self.stack:
            self.ctm, self.white = self.stack.pop()
        elif name == "cm" and len(args) >= 6:
            a, b, c, d, e, f = args[-6:]
            self.ctm = _times((a, b, c, d, e, f), self.ctm)
        elif name in ("rg", "g") and args:
            self.white = min(args[-3:] if name == "rg" else args[-1:]) >= 0.99
        elif name == "re" and len(args) >= 4:
            self.rectangle(*args[-4:])
        elif name in _PAINT:
            self.ys += [] if self.white and name in ("f", "f*", "F") else self.path
            self.path = []
        elif name in ("n", "W", "W*"):
            self.path = []
        elif name == "Tm" and len(args) >= 6:
            self.ys.append(_y(self.ctm, args[-2], args[-1]))

    def rectangle(self, x: float, y: float, w: float, h: float) -> None:
        """A rectangle on the current path (the page's own background left out)."""
        y0, y1 = _y(self.ctm, x, y), _y(self.ctm, x + w, y + h)
        page = abs(w * self.ctm[0]) >= 0.95 * self.width and abs(y1 - y0) >= 0.95 * self.height
        if not page:
            self.path += [y0, y1]


def _extent(content: bytes, width: float, height: float) -> tuple[float, float]:
    """The lowest and highest y (PDF points, from the bottom) of anything drawn."""
    reader = _Reader(width, height)
    numbers: list[float] = []
    for token in _TOKEN.findall(content):
        try:
            numbers.append(float(token))
            continue
        except ValueError:
            pass
        name = token.decode("latin-1")
        reader.op(name, numbers)
        if not name.startswith(("/", "<", "(", "[", "]")):
            numbers = []
    ys = [y for y in reader.ys if 0 <= y <= height]  # marks clipped off the page do not count
    return (min(ys), max(ys)) if ys else (height, height)


def pages(pdf: Path) -> list[Page]:
    """Every page of ``pdf``, in order."""
    data = pdf.read_bytes()
    objects = {int(m.group(1)): m.group(2) for m in _OBJECT.finditer(data)}

    def leaves(number: int) -> list[int]:
        body = objects[number]
        if b"/Type /Pages" not in body:
            return [number]
        kids = re.search(rb"/Kids \[(.*?)\]", body, re.S)
        refs = re.findall(rb"(\d+) 0 R", kids.group(1)) if kids else []
        return [leaf for ref in refs for leaf in leaves(int(ref))]

    root = next(n for n, b in objects.items() if b"/Type /Pages" in b and b"/Parent" not in b)
    found = []
    for number in leaves(root):
        body = objects[number]
        box = [float(v) for v in re.search(rb"/MediaBox \[([^\]]*)\]", body).group(1).split()]  # type: ignore[union-attr]
        width, height = box[2] - box[0], box[3] - box[1]
        refs = re.search(rb"/Contents (\[[^\]]*\]|\d+ 0 R)", body)
        content = b""
        for ref in re.findall(rb"(\d+) 0 R", refs.group(1) if refs else b""):
            stream = _STREAM.search(objects[int(ref)])
            if stream:
                content += zlib.decompress(stream.group(1))
        low, high = _extent(content, width, height)
        found.append(Page(height, height - high, height - low))
    return found

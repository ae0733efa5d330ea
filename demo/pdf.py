"""A minimal, valid PDF 1.4 invoice, written by hand (no PDF library needed).

One page, the standard Helvetica font with WinAnsiEncoding (covers ä ö ü ß and €), a content
stream of text lines, and a correct cross-reference table (byte offsets computed while
writing), so real viewers open it without repair. The file starts with `%PDF-` and ends with
`%%EOF`.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["render_text_pdf"]

_PAGE_WIDTH, _PAGE_HEIGHT = 595, 842  # A4 in points
_LEFT, _TOP, _LEADING = 56, 780, 16


def _pdf_string(text: str) -> bytes:
    """A PDF literal string in WinAnsi (cp1252); unmappable characters become '?'."""
    out = bytearray(b"(")
    for byte in text.encode("cp1252", errors="replace"):
        if byte in (0x28, 0x29, 0x5C):  # ( ) \
            out += b"\\" + bytes([byte])
        elif 0x20 <= byte < 0x7F:
            out.append(byte)
        else:
            out += b"\\%03o" % byte
    out += b")"
    return bytes(out)


def _content_stream(title: str, lines: Sequence[str]) -> bytes:
    parts = [b"BT", b"/F2 16 Tf", b"%d %d Td" % (_LEFT, _TOP), _pdf_string(title) + b" Tj"]
    parts += [b"/F1 10 Tf", b"0 -%d Td" % (_LEADING * 2)]
    for index, line in enumerate(lines):
        if index:
            parts.append(b"0 -%d Td" % _LEADING)
        parts.append(_pdf_string(line) + b" Tj")
    parts.append(b"ET")
    return b"\n".join(parts) + b"\n"


def render_text_pdf(title: str, lines: Sequence[str], *, author: str = "portal demo backend") -> bytes:
    """One A4 page with a bold title and the given lines (at most ~45 fit)."""
    content = _content_stream(title, lines[:45])
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] " % (_PAGE_WIDTH, _PAGE_HEIGHT)
        + b"/Resources << /Font << /F1 4 0 R /F2 5 0 R >> >> /Contents 6 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"endstream",
        b"<< /Title " + _pdf_string(title) + b" /Producer " + _pdf_string(author) + b" >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n" % (len(objects) + 1)
    out += b"0000000000 65535 f \n"
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\n" % (len(objects) + 1, len(objects))
    out += b"startxref\n%d\n%%%%EOF" % xref_at
    return bytes(out)

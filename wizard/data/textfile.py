"""Caption text files in the encodings people save them in: UTF-8 (with or without a BOM), UTF-16
(BOM, or none: then guessed from its zero bytes), and GB18030/GBK, how many Chinese caption files are
saved. Every data reader reads its text through here.

    for lineno, line in lines(path): ...       # exact line numbers, also for what cannot be decoded
    doc = json.loads(read_text(path))           # a whole document
    head(path, 4096)                            # the start, for format detection (never raises)
    with collect_notes() as notes: ...          # "captions.txt is GB18030/GBK text ..." for the report

A file is UTF-8 until a line says otherwise: the first line with bytes outside ASCII decides, UTF-8
when it decodes as UTF-8, else GB18030 when it decodes as such and reads as Chinese (mostly GB2312
hanzi), else a UserError naming that line. Later lines must keep to the encoding chosen.
"""

from __future__ import annotations

import codecs
import contextlib
import contextvars
import io
import json
import re
from pathlib import Path
from typing import Iterator

from wizard.errors import UserError

UTF8_HINT = "save the file as UTF-8, e.g.: iconv -f GBK -t UTF-8 old.csv > new.csv"
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_LABELS = {"gb18030": "GB18030/GBK", "utf-16": "UTF-16", "utf-16-le": "UTF-16", "utf-16-be": "UTF-16",
           "utf-32": "UTF-32"}
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef\u2010-\u206f]")
_notes: contextvars.ContextVar[list | None] = contextvars.ContextVar("text_notes", default=None)


# ----------------------------------------------------------------------------- notes for the data report
@contextlib.contextmanager
def collect_notes():
    """The notes of every file read inside the block (one per file that was not UTF-8)."""
    notes: list[str] = []
    token = _notes.set(notes)
    try:
        yield notes
    finally:
        _notes.reset(token)


def _note(name: str, encoding: str) -> None:
    notes = _notes.get()
    label = _LABELS.get(encoding, encoding)
    text = f"{name} is {label} text, not UTF-8: read as {label} (save it as UTF-8 to drop this note)"
    if notes is not None and text not in notes:
        notes.append(text)


# ----------------------------------------------------------------------------- detection
def sniff(raw: bytes) -> str | None:
    """The codec a file's first bytes name: a BOM, or UTF-16 without one (every other byte zero);
    None: an ASCII-compatible file (UTF-8 or GB18030, told apart line by line)."""
    for bom, codec in _BOMS:
        if raw.startswith(bom):
            return codec
    sample = raw[:4096]
    if len(sample) >= 4 and sample.count(0) * 4 >= len(sample):
        even, odd = sample[0::2].count(0), sample[1::2].count(0)
        if odd > 3 * even:
            return "utf-16-le"
        if even > 3 * odd:
            return "utf-16-be"
    return None


def looks_chinese(raw: bytes) -> bool:
    """GB18030 that reads as Chinese: most of its two-byte characters are GB2312 hanzi or punctuation
    (both bytes >= 0xA1), which Latin-1 text with accents (é followed by a letter) is not."""
    try:
        text = raw.decode("gb18030")
    except UnicodeDecodeError:
        return False
    pairs = gb2312 = 0
    i, n = 0, len(raw)
    while i < n:
        b = raw[i]
        if b < 0x80:
            i += 1
        elif i + 1 < n and 0x30 <= raw[i + 1] <= 0x39:  # a four-byte GB18030 sequence
            i += 4
        else:
            pairs += 1
            gb2312 += b >= 0xA1 and i + 1 < n and raw[i + 1] >= 0xA1
            i += 2
    wide = [c for c in text if ord(c) > 0x7F]
    return pairs > 0 and gb2312 * 2 >= pairs and sum(bool(_CJK.match(c)) for c in wide) * 2 >= len(wide)


def _not_text(path, lineno: int, raw: bytes, encoding: str | None) -> UserError:
    bad = _first_bad(raw, encoding or "utf-8")
    what = "UTF-8 text (nor GB18030/GBK or UTF-16)" if encoding in (None, "utf-8") else \
        f"{_LABELS.get(encoding, encoding)} text, like the lines before it"
    return UserError(f"{path}: line {lineno} is not {what}{bad}", hint=UTF8_HINT)


def _first_bad(raw: bytes, codec: str) -> str:
    try:
        raw.decode(codec)
    except UnicodeDecodeError as e:
        return f" (bytes {raw[e.start:e.start + 4].hex(' ')} at byte {e.start + 1} of the line)"
    except LookupError:
        pass
    return ""


# ----------------------------------------------------------------------------- reading
def lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of a text file; "\\r\\n" and a lone "\\r" end lines like "\\n"."""
    with open(path, "rb") as f:
        codec = sniff(f.read(4096))
    if codec is not None and codec != "utf-8-sig":  # UTF-16/32: decoded whole (such files are small)
        text = _decode_whole(path.read_bytes(), codec, path)
        yield from enumerate(io.StringIO(text, newline=None), 1)
        return
    encoding: str | None = "utf-8" if codec else None  # None: only ASCII so far
    lineno = 0
    with open(path, "rb") as f:
        first = True
        for raw in f:
            if first and codec == "utf-8-sig":
                raw = raw[len(codecs.BOM_UTF8):]
            first = False
            lineno += 1
            if raw.isascii():
                text = raw.decode("ascii")
            elif encoding is None:
                encoding, text = _decide(raw, path, lineno)
            else:
                try:
                    text = raw.decode(encoding)
                except UnicodeDecodeError:
                    raise _not_text(path, lineno, raw, encoding) from None
            if "\r" in text:
                parts = text.replace("\r\n", "\n").split("\r")
                for part in parts[:-1]:
                    yield lineno, part + "\n"
                    lineno += 1
                text = parts[-1]
                if not text:
                    lineno -= 1
                    continue
            yield lineno, text


def _decide(raw: bytes, path: Path, lineno: int) -> tuple[str, str]:
    try:
        return "utf-8", raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if looks_chinese(raw):
        _note(path.name, "gb18030")
        return "gb18030", raw.decode("gb18030")
    raise _not_text(path, lineno, raw, None)


def _decode_whole(raw: bytes, codec: str, path: Path) -> str:
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as e:
        before = raw[:e.start].decode(codec, errors="replace")
        lineno = len(re.findall(r"\r\n|\r|\n", before)) + 1
        raise UserError(f"{path}: line {lineno} is not {_LABELS.get(codec, codec)} text "
                        f"(bytes {raw[e.start:e.start + 4].hex(' ')})", hint=UTF8_HINT) from None
    if codec not in ("utf-8", "utf-8-sig"):
        _note(path.name, codec)
    return text.removeprefix("\ufeff")


def decode(raw: bytes, name: str | Path) -> str:
    """A whole text (a file's bytes, a caption inside a shard) by the rules above."""
    path = Path(name)
    codec = sniff(raw)
    if codec is not None:
        return _decode_whole(raw, codec, path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        if looks_chinese(raw):
            _note(path.name, "gb18030")
            return raw.decode("gb18030")
        start = raw.rfind(b"\n", 0, e.start) + 1
        end = raw.find(b"\n", e.start)
        raise _not_text(path, raw.count(b"\n", 0, e.start) + 1, raw[start:end if end >= 0 else None], None) from None


def read_text(path: Path) -> str:
    return decode(path.read_bytes(), path)


def head(path: Path, n: int = 1 << 16) -> str:
    """The first `n` bytes as text (for format detection: a character cut at the end is replaced)."""
    with open(path, "rb") as f:
        raw = f.read(n)
    codec = sniff(raw) or "utf-8"
    text = raw.decode(codec, errors="replace")
    if codec == "utf-8" and "\ufffd" in text and looks_chinese(raw[: raw.rfind(b"\n") + 1] or raw):
        text = raw.decode("gb18030", errors="replace")
    return text.lstrip("\ufeff")


# ----------------------------------------------------------------------------- JSON messages
def json_error(e: json.JSONDecodeError, *, line: bool = True) -> str:
    """'at line 3, column 62: invalid control character' (json's own text, "Invalid control character
    at", is meant to be followed by its position)."""
    msg = e.msg.removesuffix(" at").removesuffix(":")
    msg = msg[:1].lower() + msg[1:]
    return f"at line {e.lineno}, column {e.colno}: {msg}" if line else f"at column {e.colno}: {msg}"

"""The one home of API-key redaction: every outward path (exception text, log records, CLI output, poll events,
Airflow trigger events) goes through a `Redactor`.

What a server, or a proxy in front of it, may plausibly echo of the ``Authorization`` header, and is removed:

* the key raw, and with letters in either case;
* JSON-escaped, one character at a time or all of them: ``\\/``, ``\\u002b``, ``\\u0041`` (hex in either case),
  mixed with raw characters;
* URL-encoded: ``%2B`` / ``%2b`` for any character (also double-encoded ``%252B``), and a ``+`` that a form
  decoder turned into a space;
* HTML character references (``&#43;``, ``&#x2b;``, ``&plus;``), as an HTML error page of a proxy writes them;
* base64 (and base64url) of the key at each of the three alignments, so ``base64("Bearer " + key)`` or any
  header dump that base64-encodes the key is caught: cheap, and the one binary-to-text form a debugging proxy
  uses (hex and other forms are not: no server plausibly writes a header that way);
* any piece of at least `MIN_PIECE` consecutive characters of the key in those forms, so a key cut in two by
  someone else's truncation (aiohttp's parser quotes a bounded excerpt) leaves no usable piece either.

Text is always redacted whole before it is cut (`Redactor.excerpt`), so no cut can split a key out of reach.

Defence in depth: every live `PortableClient` registers its key here (counted, so two clients with one key work;
unregistered on close or when the client is garbage-collected), and `RedactingFilter`, installed on the
``portable_wait`` logger at import, redacts every live key from every record it emits.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import re
import sys
import threading
import traceback
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar, cast

__all__ = [
    "MIN_PIECE",
    "REDACTED",
    "RedactingFilter",
    "RedactingStream",
    "Redactor",
    "live_redactor",
    "redact",
    "redact_payload",
    "redacted_output",
    "register_key",
    "unregister_key",
]

REDACTED = "[redacted]"
MIN_PIECE = 8
T = TypeVar("T")

# Characters no key holds and that render as nothing (or are an encoding's artefact, as the NULs of UTF-16 or
# UTF-32 bytes read as UTF-8 or Latin-1): C0 controls other than tab and line breaks (layout, kept so no span
# swallows a line break), DEL, C1 controls, and Unicode format characters (category Cf: zero-width spaces and
# joiners, bidi marks, the BOM, the soft hyphen, tags). The Cf ranges are Unicode 15's; a unit test checks them
# against the running Python's `unicodedata`.
_IGNORABLE = (
    "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
# One encoded character, or one piece of text that decodes to nothing:
#   JSON / C-style escapes: \uXXXX, \/, \xXX;
#   percent-escapes, up to four levels deep (%2B, %252B, %25252B, %2525252B), and IIS's %uXXXX;
#   HTML character references: &#43; &#x2b; &plus; and, without the semicolon (which HTML tolerates), &#43 and
#   &#x2b, read as the longest ASCII value (so "&#1262" reads "~2", as an eye reads it);
#   quoted-printable =XX (not its soft line break "=" + newline: a padded base64 key at a line's end reads so);
#   ANSI escape sequences (CSI, OSC, two-character ESC) and the ignorable characters above (decoded to nothing).
_UNIT = re.compile(
    r"\\u([0-9a-fA-F]{4})|\\(/)|\\x([0-9a-fA-F]{2})"
    r"|%(?:25){0,3}(?:([0-9a-fA-F]{2})|[uU]([0-9a-fA-F]{4}))"
    r"|&#([0-9]{1,7});|&#[xX]([0-9a-fA-F]{1,6});|&([a-zA-Z]{2,8});"
    r"|&#(0*(?:1[01][0-9]|12[0-7]|[0-9]{1,2}))|&#[xX](0*[0-7]?[0-9a-fA-F])"
    r"|=([0-9A-Fa-f]{2})"
    r"|((?:\x1b\[|\x9b)[0-?]{0,32}[ -/]{0,8}[@-~]|\x1b\][^\x07\x1b]{0,256}(?:\x07|\x1b\\)|\x1b[@-Z\\-_]"
    f"|[{_IGNORABLE}]+)"
)
# The characters that can start a unit; only where one stands is a unit tried (one alternation per position
# costs ~100 ns a character). Printable text (`str.isprintable`, at C speed) has no ignorable character, and
# ASCII text none beyond 0x7f: narrower classes scan several times faster than the full one.
_TRIGGER = re.compile(f"[\\\\%&={_IGNORABLE}]")
_ASCII_TRIGGER = re.compile("[\\\\%&=\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_PRINTABLE_TRIGGER = re.compile(r"[\\%&=]")
_NAMED = {"plus": "+", "sol": "/", "equals": "=", "period": ".", "tilde": "~", "lowbar": "_", "hyphen": "-"}
_LONGEST_UNIT = 12  # "%2525252B" + "u0041", "&#0000043;"; longer units (ANSI) only widen the excerpt's first try


def _decode_unit(match: re.Match[str]) -> str | None:
    json_hex, slash, c_hex, percent, iis, decimal, hexadecimal, name, bare_decimal, bare_hex, qp, nothing = (
        match.groups()
    )
    if nothing is not None:
        return ""
    if slash:
        return "/"
    if name is not None:
        return _NAMED.get(name.lower())
    if decimal is not None or bare_decimal is not None:
        code = int(decimal or bare_decimal)
    else:
        code = int(json_hex or c_hex or percent or iis or hexadecimal or bare_hex or qp, 16)
    return chr(code) if code < 0x110000 else None


def _fold(text: str) -> str:
    # Letters in either case, and a "+" that a form decoder turned into a space, compare equal.
    return text.lower().replace(" ", "+")


def _canonical(text: str, *, quoted_printable: bool = True) -> tuple[str, tuple[list[int], list[int]] | None]:
    """Return ``text`` with every encoded character decoded and folded, and where each character came from.

    The offsets are two lists, one entry per canonical character: where its unit starts and ends in ``text``.
    None means the identity (nothing was encoded), the common case, which costs one scan. A unit decoded to
    nothing (an ANSI sequence, a NUL) has no entry: a span that runs across it covers it, one that ends or
    starts next to it leaves it (so an ANSI reset after a key survives its redaction). Without
    ``quoted_printable``, ``=XX`` is left as written (see `_QP`).
    """
    if text.isprintable():
        if "\\" not in text and "%" not in text and "&" not in text and "=" not in text:
            return _fold(text), None
        trigger = _PRINTABLE_TRIGGER
    else:
        trigger = _ASCII_TRIGGER if text.isascii() else _TRIGGER
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    position = 0
    for hit in trigger.finditer(text):
        if hit.start() < position:
            continue
        match = _UNIT.match(text, hit.start())
        if match is None or (not quoted_printable and match.group(11) is not None):
            continue
        decoded = _decode_unit(match)
        if decoded is None:
            continue
        start = match.start()
        chars.append(text[position:start])
        starts.extend(range(position, start))
        ends.extend(range(position + 1, start + 1))
        if decoded:
            chars.append(decoded)
            starts.append(start)
            ends.append(match.end())
        position = match.end()
    if not position:
        return _fold(text), None
    chars.append(text[position:])
    starts.extend(range(position, len(text)))
    ends.extend(range(position + 1, len(text) + 1))
    return _fold("".join(chars)), (starts, ends)


# "=XX" is the one unit that plain text writes before a key: "?token=KEY", "api_key=KEY". Read as quoted-printable,
# it eats the key's first two characters when they are hex digits, which leaves too few of a short key (or of one
# with more encoded characters) to be found. Text holding one is therefore also read with "=" left as written.
_QP = re.compile(r"=[0-9A-Fa-f]{2}")


def _views(text: str) -> Iterator[tuple[str, tuple[list[int], list[int]] | None]]:
    """Yield the canonical readings of ``text`` to search (see `_canonical`): one, or two when `_QP` is ambiguous."""
    view = _canonical(text)
    yield view
    if view[1] is not None and _QP.search(text):
        yield _canonical(text, quoted_printable=False)


def _base64_forms(key: str) -> list[str]:
    # Where the key starts in the encoded stream decides its base64 text: one stable run of characters per
    # alignment, whatever bytes surround it.
    raw = key.encode()
    found = []
    for skip in range(3):
        part = raw[skip:]
        part = part[: len(part) - len(part) % 3]
        if len(part) >= 6:
            found.append(base64.b64encode(part).decode())
            found.append(base64.urlsafe_b64encode(part).decode())  # base64url, as JWTs and cookies use
    return found


class Redactor:
    """Remove one or more API keys, in every form a server plausibly echoes them, from text and bytes.

    Args:
        *keys: The secrets to remove. Empty strings are ignored.

    How: the text is decoded into a canonical form (escapes decoded, letters folded, with a map back to the
    original offsets), every window of `MIN_PIECE` characters of a key (the whole key, if shorter) is looked
    up in it, and the matching spans, merged, are replaced in the original text. Linear in the text's length.
    The repr never shows the keys. A `Redactor` with no keys returns its input unchanged.
    """

    __slots__ = ("__count", "__grams", "__margin", "__runs")

    def __init__(self, *keys: str) -> None:
        secrets = [k for k in dict.fromkeys(keys) if k]
        expanded = secrets + [form for k in secrets for form in _base64_forms(k)]
        grams: dict[int, set[str]] = {}
        # A key's own text may read as an escape ("=4B", "%41"): its decoded form is looked for too.
        for folded in {form for secret in expanded for form in (_fold(secret), _canonical(secret)[0])}:
            if not folded:
                continue
            size = min(MIN_PIECE, len(folded))
            grams.setdefault(size, set()).update(folded[i : i + size] for i in range(len(folded) - size + 1))
        self.__count = len(secrets)
        self.__grams = sorted(grams.items(), reverse=True)
        # Only runs of at least that many characters of the keys can hold a piece: found at C speed, so the
        # common text (no key) costs one regex scan, not a lookup per position.
        self.__runs = [
            re.compile(f"[{re.escape(''.join(sorted(set(''.join(g)))))}]{{{size},}}") for size, g in self.__grams
        ]
        self.__margin = max((len(s) for s in expanded), default=0) * _LONGEST_UNIT

    def __repr__(self) -> str:
        return f"<Redactor of {self.__count} key(s)>"

    def __bool__(self) -> bool:
        return bool(self.__grams)

    def _canonical_spans(self, canonical: str) -> list[list[int]]:
        spans: list[list[int]] = []
        for (size, grams), runs in zip(self.__grams, self.__runs, strict=True):
            for run in runs.finditer(canonical):
                for start in range(run.start(), run.end() - size + 1):
                    if canonical[start : start + size] in grams:
                        spans.append([start, start + size])
        return _merged(spans)

    def _spans(self, text: str) -> list[list[int]]:
        """Return the merged spans of ``text`` (its own offsets) that hold a form of a key, in any of its readings."""
        spans: list[list[int]] = []
        for canonical, offsets in _views(text):
            for start, end in self._canonical_spans(canonical):
                spans.append([start, end] if offsets is None else [offsets[0][start], offsets[1][end - 1]])
        return _merged(spans)

    def text(self, text: str) -> str:
        """Return ``text`` with every form of every key replaced by ``[redacted]``."""
        if not self.__grams or not text:
            return text
        spans = self._spans(text)
        if not spans:
            return text
        out = []
        last = 0
        for start, end in spans:
            out.append(text[last:start])
            out.append(REDACTED)
            last = end
        out.append(text[last:])
        return "".join(out)

    def bytes(self, data: bytes) -> bytes:
        """Return ``data`` redacted, byte for byte where nothing matched (the keys are ASCII)."""
        if not self.__grams or not data:
            return data
        return self.text(data.decode("latin-1")).encode("latin-1")

    def excerpt(self, text: str, limit: int) -> str:
        """Return at most ``limit`` characters of ``text`` (plus "..." when cut), redacted before the cut."""
        size = limit + self.__margin + MIN_PIECE
        while True:
            cleaned = self.text(text[:size])
            # A key cut by this head leaves at most MIN_PIECE - 1 characters at its end: keep them past the cut.
            if size >= len(text) or len(cleaned) >= limit + MIN_PIECE:
                break
            size *= 2
        if len(cleaned) > limit or size < len(text):
            return cleaned[:limit] + "..."
        return cleaned

    def payload(self, value: T) -> T:
        """Return a copy of a JSON-like value (dicts, lists, tuples, strings) with every string redacted."""
        return _walk(value, self.text)  # type: ignore[no-any-return]

    def contains(self, text: str) -> bool:
        """Return True if ``text`` holds any form of a key."""
        for canonical, _ in _views(text):
            for (size, grams), runs in zip(self.__grams, self.__runs, strict=True):
                for run in runs.finditer(canonical):
                    if any(canonical[i : i + size] in grams for i in range(run.start(), run.end() - size + 1)):
                        return True
        return False


def _merged(spans: list[list[int]]) -> list[list[int]]:
    spans.sort()
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def _walk(value: Any, fix: Any) -> Any:
    if isinstance(value, str):
        return fix(value)
    if isinstance(value, dict):
        return {_walk(k, fix): _walk(v, fix) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_walk(v, fix) for v in value)
    return value


def redact(text: str, key: str) -> str:
    """Return ``text`` without ``key`` in any form (see the module docstring)."""
    return Redactor(key).text(text)


# -- the keys of live clients -------------------------------------------------------------------------------


class _Registry:
    """Counted keys of live clients; builds a `Redactor` of them on demand. Its repr shows only a count."""

    __slots__ = ("__counts", "__lock", "__redactor")

    def __init__(self) -> None:
        self.__counts: dict[str, int] = {}
        self.__lock = threading.Lock()
        self.__redactor: Redactor | None = Redactor()

    def __repr__(self) -> str:
        return f"<live API keys: {len(self.__counts)}>"

    def add(self, key: str) -> None:
        with self.__lock:
            self.__counts[key] = self.__counts.get(key, 0) + 1
            self.__redactor = None

    def discard(self, key: str) -> None:
        with self.__lock:
            left = self.__counts.get(key, 0) - 1
            if left > 0:
                self.__counts[key] = left
            elif key in self.__counts:
                del self.__counts[key]
            self.__redactor = None

    def redactor(self) -> Redactor:
        with self.__lock:
            if self.__redactor is None:
                self.__redactor = Redactor(*self.__counts)
            return self.__redactor


_LIVE = _Registry()


def register_key(key: str) -> None:
    """Count one more live user of ``key`` (a client); the log filter redacts it until unregistered."""
    _LIVE.add(key)


def unregister_key(key: str) -> None:
    """Count one user of ``key`` less; the key is forgotten when none is left."""
    _LIVE.discard(key)


def live_redactor() -> Redactor:
    """Return a `Redactor` of every live client's key."""
    return _LIVE.redactor()


def redact_payload(value: T, *extra: Redactor | None) -> T:
    """Return a JSON-like ``value`` (an Airflow trigger event's payload) redacted of every live key and ``extra``."""
    for redactor in (*extra, live_redactor()):
        if redactor:
            value = redactor.payload(value)
    return value


class RedactingFilter(logging.Filter):
    """Redact every live client's key from a record: its message and arguments, exception and stack text.

    The record's message is rendered and replaced (``args`` emptied). When the traceback text held a key, the
    redacted text is stored in ``exc_text`` and ``exc_info`` dropped, so no handler can render it again.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = live_redactor()
        if not redactor:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to logging's own error handling, but redacted
            message = f"{record.msg!r} % {record.args!r}"
        cleaned = redactor.text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            text = record.exc_text or "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            cleaned_text = redactor.text(text)
            if cleaned_text != text:
                record.exc_info, record.exc_text = None, cleaned_text
        elif record.exc_text:
            record.exc_text = redactor.text(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor.text(record.stack_info)
        return True


def install_filter(logger: logging.Logger) -> None:
    """Add one `RedactingFilter` to ``logger`` (idempotent)."""
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())


install_filter(logging.getLogger("portable_wait"))


class RedactingStream:
    """A text stream that redacts every live key (and ``redactor``'s) from what is written to it.

    The CLI writes through two of these (stdout, stderr), so nothing it prints, rich tables included, can carry
    a key that slipped past redaction at the source. Everything else is delegated to the wrapped stream.
    """

    def __init__(self, stream: TextIO, redactor: Redactor) -> None:
        self._stream = stream
        self._redactor = redactor

    def __repr__(self) -> str:
        return f"<RedactingStream of {self._stream!r}>"

    def write(self, text: str) -> int:
        self._stream.write(redact_payload(text, self._redactor))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def redacted_output(redactor: Redactor) -> Iterator[None]:
    """Within the block, route ``sys.stdout`` and ``sys.stderr`` through `RedactingStream`."""
    out = cast(TextIO, RedactingStream(sys.stdout, redactor))
    err = cast(TextIO, RedactingStream(sys.stderr, redactor))
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield

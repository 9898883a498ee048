"""The Redactor, the live-key registry, the log filter and the redacting stream. No sockets."""

from __future__ import annotations

import base64
import gc
import io
import json
import logging
import sys
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from portable_wait import PortableClient
from portable_wait._redact import (
    REDACTED,
    RedactingFilter,
    RedactingStream,
    Redactor,
    live_redactor,
    redact,
    redact_payload,
    redacted_output,
)
from portable_wait._report import redact_event

KEY = "pk_live+AbC/dEf=GhI~jKl_mNo-pQr.sTuV0123456789=="


def _json_all(key: str, upper: bool = False) -> str:
    return "".join((f"\\u{ord(c):04X}" if upper else f"\\u{ord(c):04x}") for c in key)


FORMS = {
    "raw": KEY,
    "upper case": KEY.upper(),
    "json \\/": KEY.replace("/", "\\/"),
    "json \\u lower": _json_all(KEY),
    "json \\u upper": _json_all(KEY, upper=True),
    "json mixed": KEY.replace("+", "\\u002b").replace("=", "\\u003D").replace("/", "\\/"),
    "json.dumps ascii": json.dumps(KEY).replace("/", "\\/")[1:-1],
    "url upper": urllib.parse.quote(KEY, safe=""),
    "url lower": urllib.parse.quote(KEY, safe="").lower(),
    "url every char": "".join(f"%{ord(c):02x}" for c in KEY),
    "url double": urllib.parse.quote(urllib.parse.quote(KEY, safe=""), safe=""),
    "url + as space": urllib.parse.unquote_plus(KEY),
    "html decimal": "".join(f"&#{ord(c)};" for c in KEY),
    "html hex": "".join(f"&#x{ord(c):X};" for c in KEY),
    "html named": KEY.replace("+", "&plus;").replace("/", "&sol;").replace("=", "&equals;"),
    "base64 of Bearer key": base64.b64encode(f"Bearer {KEY}".encode()).decode(),
    "base64 offset 1": base64.b64encode(f"x{KEY}".encode()).decode(),
    "base64 offset 2": base64.b64encode(f"xy{KEY}".encode()).decode(),
    "base64url": base64.urlsafe_b64encode(f"Bearer {KEY}".encode()).decode(),
    "python bytes repr": repr(KEY.encode()),
    "url triple": urllib.parse.quote(urllib.parse.quote(urllib.parse.quote(KEY, safe=""), safe=""), safe=""),
    "url quadruple": "".join(f"%252525{ord(c):02X}" if not c.isalnum() else c for c in KEY),
    "url %u (IIS)": "".join(f"%u{ord(c):04X}" if not c.isalnum() else c for c in KEY),
    "c \\x escapes": "".join(f"\\x{ord(c):02x}" if not c.isalnum() else c for c in KEY),
    "html decimal no semicolon": "".join(f"&#{ord(c)}" if not c.isalnum() else c for c in KEY),
    "html hex no semicolon": "".join(f"&#x{ord(c):x}" if not c.isalnum() else c for c in KEY),
    "quoted-printable all": "".join(f"={ord(c):02X}" for c in KEY),
    "utf-16le read as utf-8": KEY.encode("utf-16-le").decode(),
    "utf-16be read as latin-1": KEY.encode("utf-16-be").decode("latin-1"),
    "utf-32 read as utf-8": KEY.encode("utf-32-le").decode(),
    "ansi per char": "".join(f"\x1b[1;31m{c}" for c in KEY),
    "zero-width joined": "\u200b".join(KEY),
    "soft hyphen and bidi joined": "".join(c + "\u00ad\u202e" for c in KEY[:-1]) + KEY[-1],
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_redact_removes_every_form_of_the_key(form: str) -> None:
    text = f"token {FORMS[form]} rejected"
    cleaned = redact(text, KEY)
    assert REDACTED in cleaned
    assert cleaned.startswith("token ") and cleaned.endswith(" rejected")
    # What is left holds no 8-character piece of the key; of a base64 form, only what encodes the bytes around it.
    assert not any(KEY[i : i + 8] in cleaned for i in range(len(KEY) - 7))
    slack = 16 if form.startswith(("base64", "ansi", "utf-32")) else 3  # encoded bytes or skipped units around
    assert len(cleaned) <= len("token  rejected") + len(REDACTED) + slack


@pytest.mark.parametrize("cut", [8, 9, 14, 20, len(KEY) - 1])
def test_redact_removes_pieces_cut_by_someone_else(cut: int) -> None:
    assert KEY[:cut] not in redact(f"...starts with {KEY[:cut]}", KEY)
    assert KEY[-cut:] not in redact(f"{KEY[-cut:]} and more", KEY)
    assert KEY[3 : 3 + cut] not in redact(f"[{KEY[3 : 3 + cut]}]", KEY)


def test_redact_leaves_other_text_alone() -> None:
    text = "HTTP 503 for workflow 7: upstream timed out (100% of 3 tries); see &amp; \\n https://x.io/a%20b"
    assert redact(text, KEY) == text
    assert Redactor().text(text) == text
    assert not Redactor()


def test_redact_short_key_is_removed_whole() -> None:
    assert redact("a abc+ b", "abc+") == f"a {REDACTED} b"


def test_redact_excerpt_redacts_before_cutting() -> None:
    redactor = Redactor(KEY)
    for position in range(0, 60):
        text = "x" * position + KEY + "y" * 100
        excerpt = redactor.excerpt(text, 40)
        assert len(excerpt) <= 43
        # Not even a short prefix: the cut came after redaction.
        assert not any(KEY[:n] in excerpt for n in range(6, len(KEY))), (position, excerpt)


def test_redact_excerpt_of_an_encoded_key_longer_than_the_limit() -> None:
    text = "x" * 30 + _json_all(KEY) + "y" * 10
    assert REDACTED[:10] in Redactor(KEY).excerpt(text, 40)


def test_redact_bytes() -> None:
    body = b'{"message": "bad ' + KEY.replace("/", "\\/").encode() + b'", "x": "\xff"}'
    cleaned = Redactor(KEY).bytes(body)
    assert REDACTED.encode() in cleaned and b"\xff" in cleaned and KEY[:8].encode() not in cleaned


def test_redact_payload_walks_json() -> None:
    payload: dict[str, Any] = {"message": f"x {KEY}", "results": {"7": {"errors": [KEY, "fine"], "n": 3, "ok": None}}}
    cleaned = redact_payload(payload, Redactor(KEY))
    assert KEY not in json.dumps(cleaned)
    assert cleaned["results"]["7"]["errors"][1] == "fine" and cleaned["results"]["7"]["n"] == 3
    assert KEY in json.dumps(payload), "the input is not modified"


def test_redactor_repr_hides_the_keys() -> None:
    redactor = Redactor(KEY, "another-secret-1")
    assert KEY not in repr(redactor) and "2 key" in repr(redactor)
    assert KEY[:8] not in repr(live_redactor())


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    logger = logging.getLogger("portable_wait")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


async def test_redact_live_keys_are_counted_per_client(captured: io.StringIO) -> None:
    logger = logging.getLogger("portable_wait")
    first, second = PortableClient(KEY), PortableClient(KEY)
    logger.debug("one %s", KEY)
    await first.aclose()
    await first.aclose()  # twice: still counted once
    logger.debug("two %s", KEY)
    await second.aclose()
    assert not live_redactor().contains(KEY)
    lines = captured.getvalue().splitlines()
    assert lines == [f"one {REDACTED}", f"two {REDACTED}"]


def test_redact_client_never_closed_is_forgotten_when_collected() -> None:
    client = PortableClient(KEY)
    assert live_redactor().contains(KEY)
    del client
    gc.collect()
    assert not live_redactor().contains(KEY)


async def test_redact_filter_covers_message_args_and_tracebacks(captured: io.StringIO) -> None:
    logger = logging.getLogger("portable_wait")
    async with PortableClient(KEY):
        logger.warning("server said %r", {"message": KEY.replace("/", "\\/")})
        logger.info(f"formatted already: {urllib.parse.quote(KEY, safe='')}")
        try:
            raise RuntimeError(f"echo {KEY}")
        except RuntimeError:
            logger.exception("failed")
        logger.debug("stack", stack_info=True)
        logger.info("harmless %d", 3)
    text = captured.getvalue()
    assert not any(KEY[i : i + 8] in text for i in range(len(KEY) - 7)), text
    assert "harmless 3" in text and "RuntimeError" in text and text.count(REDACTED) >= 3


def test_redact_filter_without_live_keys_leaves_records_alone() -> None:
    record = logging.LogRecord("portable_wait", logging.INFO, __file__, 1, "n=%d", (3,), None)
    assert RedactingFilter().filter(record)
    assert record.args == (3,)


def test_redacting_stream_and_redirected_output(capsys: pytest.CaptureFixture[str]) -> None:
    target = io.StringIO()
    stream = RedactingStream(target, Redactor(KEY))
    stream.write(f"a {KEY}\n")
    stream.writelines([f"b {KEY.lower()}\n"])
    stream.flush()
    assert target.getvalue() == f"a {REDACTED}\nb {REDACTED}\n"
    assert KEY not in repr(stream)
    with redacted_output(Redactor(KEY)):
        print(KEY)
        print(urllib.parse.quote(KEY), file=sys.stderr)
    out, err = capsys.readouterr()
    assert out == f"{REDACTED}\n" and err == f"{REDACTED}\n"


async def test_redact_event_uses_the_connections_key_after_close() -> None:
    client = PortableClient(KEY)
    await client.aclose()  # its key is no longer live: only the key passed in can redact it
    event = {"status": "failure", "message": f"workflow 7: FAILED: {KEY}", "results": {}}
    assert KEY not in json.dumps(redact_event(event, KEY))
    assert redact_event({"message": "fine"}) == {"message": "fine"}


async def test_redact_errors_built_elsewhere_while_a_client_lives() -> None:
    from portable_wait import PortableAPIError, WorkflowFailedError, WorkflowStatus

    status = WorkflowStatus.model_validate(
        {"id": 3, "lifecycle": "NOT_RUNNING", "disposition": "FAILED", "errors": [f"token {KEY} rejected"]}
    )
    assert KEY in str(WorkflowFailedError(status)), "no live client: nothing to redact with"
    async with PortableClient(KEY):
        assert KEY[:8] not in str(WorkflowFailedError(status))
        api = PortableAPIError(500, f"echo {KEY}")
        assert KEY[:8] not in str(api) and KEY[:8] not in api.message


def test_redact_bare_html_reference_reads_as_the_eye_does() -> None:
    # "&#1262" is "~" then "2" to a reader (HTML would take U+04EE): the ASCII reading is the one matched.
    key = "Zq7+Kx/9mW=e~R.t_Y-uP3+/nB8=vL~2.hJ_0-A"
    text = "".join(f"&#{ord(c)}" if not c.isalnum() else c for c in key)
    assert redact(text, key) == REDACTED


def test_redact_leaves_skipped_characters_outside_the_key() -> None:
    # An ANSI reset after the key, a line break after a padded key, a UTF-16 NUL: kept, so layout survives.
    assert redact(f"x \x1b[31m{KEY}\x1b[0m y", KEY) == f"x \x1b[31m{REDACTED}\x1b[0m y"
    assert redact(f"a {KEY}\nb", KEY) == f"a {REDACTED}\nb"
    assert redact("\x00".join(f"k {KEY}") + "\x00", KEY).endswith(f"{REDACTED}\x00")


def test_redact_key_that_reads_as_an_escape() -> None:
    for key in ("abc=4Bxyz123", "ab%41cdefgh", "a&#43bcdefgh"):
        assert redact(f"k {key} .", key) == f"k {REDACTED} .", key


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("redirect to https://x.example/?t=ab12cd34 not followed", "ab12cd34"),  # "=ab" reads as quoted-printable
        ("redirect to https://x.example/?t=00%300%3000%30", "00000000"),  # Hypothesis found this one
        ("api_key=4f3a9c2e1b&user=x", "4f3a9c2e1b"),
    ],
)
def test_redact_key_after_an_equals_sign(text: str, key: str) -> None:
    # "?token=KEY": the "=" and the key's first two hex digits are also a quoted-printable escape, which left
    # too few characters of a short key to be found.
    cleaned = urllib.parse.unquote(redact(text, key))
    assert REDACTED in cleaned and not any(key[i : i + 8] in cleaned for i in range(len(key) - 7)), cleaned
    assert Redactor(key).contains(text)


def test_redact_leaves_text_with_escape_like_pieces_alone() -> None:
    text = "row_count=42 a=\n b 50% \x1b[0m done \u200b &#43 %u0041"
    assert redact(text, KEY) == text


def test_redact_ignorable_class_covers_every_format_character() -> None:
    import re
    import unicodedata

    from portable_wait._redact import _IGNORABLE

    ignorable = re.compile(f"[{_IGNORABLE}]")
    missing = [hex(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Cf" and not ignorable.match(chr(c))]
    assert not missing
    assert not ignorable.match("\t") and not ignorable.match("\n") and not ignorable.match("\r")


def test_redact_clean_printable_text_takes_the_fast_path() -> None:
    from portable_wait._redact import _canonical

    assert _canonical("orders\u2502RUNNING\u2502customers")[1] is None
    assert _canonical("a=b, 100% & more")[1] is None  # triggers seen, no unit: still the identity

"""The API key never escapes, whatever a server echoes: tested as an attacker would.

A raw-socket server on 127.0.0.1 reads the ``Authorization`` header of each request and echoes the key back
through one channel (a malformed answer aiohttp's parser quotes, a JSON error body with escapes, the key as
lifecycle / disposition / errors, a non-JSON body, a redirect, a header), in random encodings and positions.
Then no 8-character piece of the key, raw or encoded, may appear in the raised exception or anything on its
``__cause__`` / ``__context__`` chain, in a DEBUG log record, in a `PollEvent`, in the CLI's stdout and stderr
(``-vv``, ``--json``), or in an Airflow trigger event's payload.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import html
import json
import logging
import os
import random
import re
import string
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import exceptiongroup
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import portable_wait
import portable_wait.cli
from portable_wait import PollEvent, PollPolicy, PortableClient, RetryPolicy, wait_for_completion, wait_for_many
from portable_wait._report import outcome_to_json, redact_event

# The built-in exception groups: on 3.11+ the backport's names are the built-ins; on 3.10 its own classes.
BUILTIN_GROUPS = (exceptiongroup.BaseExceptionGroup, exceptiongroup.ExceptionGroup)
KEY_ALPHABET = string.ascii_letters + string.digits + "-._~+/="
WID = 7
FAST_RETRY = RetryPolicy(attempts=2, initial=0.001, maximum=0.001)
FAST_POLL = PollPolicy(initial=0.01, maximum=0.02, jitter=0.0, outage_tolerance=0.05)
NASTY_KEY = "pk_live+AbC/dEf=GhI~jKl_mNo-pQr.sTuV0123456789=="

# -- how a key may be written -------------------------------------------------------------------------------


def json_escaped(key: str, rnd: random.Random) -> str:
    """The key as a JSON encoder might write it inside a string: any character as \\uXXXX, / as \\/, mixed."""
    out = []
    for char in key:
        choice = rnd.randrange(4)
        if choice == 1:
            out.append(f"\\u{ord(char):04x}")
        elif choice == 2:
            out.append(f"\\u{ord(char):04X}")
        elif choice == 3 and char == "/":
            out.append("\\/")
        else:
            out.append(char)
    return "".join(out)


def url_encoded(key: str, rnd: random.Random, *, lower: bool | None = None) -> str:
    out = []
    for char in key:
        if char.isalnum() and rnd.random() < 0.5:
            out.append(char)
            continue
        escape = f"%{ord(char):02X}"
        use_lower = rnd.random() < 0.5 if lower is None else lower
        out.append(escape.lower() if use_lower else escape)
    return "".join(out)


def html_escaped(key: str, rnd: random.Random) -> str:
    forms = ["{c}", "&#{o};", "&#x{o:x};", "&#X{o:X};"]
    return "".join(rnd.choice(forms).format(c=c, o=ord(c)) for c in key)


# -- what may not appear ------------------------------------------------------------------------------------


_INVISIBLE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\ufeff\xad]"
)


def _unescape(text: str) -> str:
    """Undo every encoding the redactor knows, independently of it: a leak in any of them becomes raw."""
    text = _INVISIBLE.sub("", text)  # NULs of UTF-16/32, ANSI codes, zero-width characters: unseen on a terminal
    previous = None
    while previous != text:
        previous = text
        text = re.sub(r"\\x([0-9a-fA-F]{2})|%u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1) or m.group(2), 16)), text)
        text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
        text = text.replace("\\/", "/")
        text = urllib.parse.unquote(text)
        text = html.unescape(text)
        text = _INVISIBLE.sub("", text)
    return text


def _base64_forms(key: str) -> list[str]:
    raw = key.encode()
    return [base64.b64encode(raw[i : len(raw) - (len(raw) - i) % 3]).decode() for i in range(3)]


def text_views(text: str) -> tuple[str, ...]:
    """``text`` as it is and undone of every encoding: each form in which it could show a key."""
    decoded = _unescape(text)
    return (text, decoded, decoded.replace(" ", "+"))  # a "+" that a form decoder turned into a space


def leaked_pieces(text: str, key: str) -> list[str]:
    """Return the 8-character pieces of ``key`` that ``text`` shows, raw or in any encoding."""
    return pieces_in(text_views(text), key)


def pieces_in(views: tuple[str, ...], key: str) -> list[str]:
    """Return the pieces of ``key`` found in any of ``views``."""
    return [piece for piece in key_pieces(key) if any(piece in view for view in views)]


def key_pieces(key: str) -> Iterator[str]:
    """Yield the 8-character pieces of ``key`` and of its base64 forms: what must never show."""
    for secret in (key, *_base64_forms(key)):
        for start in range(len(secret) - 7):
            yield secret[start : start + 8]


def assert_clean(text: str, key: str, where: str) -> None:
    pieces = leaked_pieces(text, key)
    assert not pieces, f"{where} shows pieces {pieces[:3]} of the key: {text[:2000]}"


def exception_chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        group = getattr(current, "exceptions", None)  # an exception group
        if isinstance(group, tuple):
            stack.extend(e for e in group if isinstance(e, BaseException))


def assert_exception_clean(error: BaseException, key: str) -> None:
    import traceback

    for link in exception_chain(error):
        assert_clean(str(link), key, f"str() of {type(link).__name__}")
        assert_clean(repr(link), key, f"repr() of {type(link).__name__}")
        assert_clean(repr(list(vars(link).values())), key, f"attributes of {type(link).__name__}")
        # Only our own exceptions or plain built-ins on the chain: aiohttp's and pydantic's hold headers / input.
        assert type(link) in BUILTIN_GROUPS or type(link).__module__.split(".")[0] in (
            "portable_wait",
            "builtins",
            "asyncio",
        ), type(link)
    assert_clean("".join(traceback.format_exception(error)), key, "the formatted traceback")
    # Error reporters that record each frame's locals (Sentry's with_locals) show them: no library frame on the
    # traceback may hold the raw body, the response or its headers.
    for link in exception_chain(error):
        tb = link.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            if frame.f_globals.get("__name__") != __name__:
                shown = {name: repr(value) for name, value in frame.f_locals.items()}
                assert_clean(repr(shown), key, f"the locals of {frame.f_code.co_name} in a traceback")
            tb = tb.tb_next


# -- the attacker's server ----------------------------------------------------------------------------------

Script = Callable[[str, random.Random], bytes]


def _http(status: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _status_json(
    lifecycle: str = "NOT_RUNNING", disposition: str = "SUCCEEDED", errors: str = "[]", resources: str = "[]"
) -> bytes:
    """A status whose string values are spliced in as written (already JSON-escaped); lists as raw JSON."""
    return (
        f'{{"id": {WID}, "lifecycle": "{lifecycle}", "disposition": "{disposition}", '
        f'"resources": {resources}, "errors": {errors}, "completedAt": null}}'
    ).encode()


def _filler(rnd: random.Random, size: int) -> str:
    return "".join(rnd.choice(string.ascii_letters + " <>") for _ in range(size))


CHANNELS: dict[str, Script] = {
    # Malformed answers: aiohttp's C parser quotes the offending bytes in its error message.
    "status line": lambda k, r: f"HTTP/1.1 2X0 Bearer {k}\r\n\r\n".encode(),
    "protocol": lambda k, r: f"HTTQ/1.1 200 {k}\r\n\r\n".encode(),
    "header token": lambda k, r: f"HTTP/1.1 200 OK\r\nBearer {k}\r\nContent-Length: 0\r\n\r\n".encode(),
    "content length": lambda k, r: f"HTTP/1.1 200 OK\r\nContent-Length: {k}\r\n\r\n".encode(),
    "chunk size": lambda k, r: f"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{k}\r\n".encode(),
    "cut short": lambda k, r: f'HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n{{"message": "{k}'.encode(),
    # JSON error bodies, written by an encoder that escapes characters.
    "401 json": lambda k, r: _http(
        "401 Unauthorized", f'{{"message": "invalid token Bearer {json_escaped(k, r)}"}}'.encode()
    ),
    "503 json": lambda k, r: _http("503 Unavailable", f'{{"message": "{json_escaped(k, r)}", "k": "{k}"}}'.encode()),
    "400 text": lambda k, r: _http("400 Bad Request", f"{_filler(r, r.randrange(400))}{k}{_filler(r, 50)}".encode()),
    "502 html": lambda k, r: _http(
        "502 Bad Gateway", f"<html><body>Authorization: Bearer {html_escaped(k, r)}</body></html>".encode()
    ),
    # Server values that are the key.
    "lifecycle": lambda k, r: _http("200 OK", _status_json(lifecycle=json_escaped(k, r))),
    "disposition": lambda k, r: _http("200 OK", _status_json(disposition=json_escaped(k, r))),
    "errors": lambda k, r: _http(
        "200 OK",
        _status_json(
            disposition="FAILED",
            errors=f'["token {json_escaped(k, r)} rejected", "{k}"]',
            resources=f'[{{"name": "{json_escaped(k, r)}", "extracted": 1, "analyzed": 1, "loaded": 1, '
            f'"errors": ["{k[: len(k) // 2]}", "{json_escaped(k, r)}"]}}]',
        ),
    ),
    # Non-JSON 200s: the key near byte 40 (where an excerpt is cut), and anywhere.
    "non-json at 40": lambda k, r: _http(
        "200 OK", f"{_filler(r, 40 - r.randrange(len(k)))}{k}{_filler(r, 20)}".encode()
    ),
    "non-json anywhere": lambda k, r: _http(
        "200 OK", f"{_filler(r, r.randrange(2000))}{url_encoded(k, r)}{_filler(r, r.randrange(50))}".encode()
    ),
    # A redirect to a URL that carries the key, percent-escapes in either case.
    "redirect upper": lambda k, r: _http(
        "302 Found", b"", {"Location": f"https://x.example/?t={url_encoded(k, r, lower=False)}"}
    ),
    "redirect lower": lambda k, r: _http(
        "302 Found", b"", {"Location": f"https://x.example/?t={url_encoded(k, r, lower=True)}"}
    ),
    # A header echoed in an error message (the content type of a body that is not JSON).
    "content type": lambda k, r: _http("200 OK", b"<html>", {"Content-Type": f"text/html; auth={k}"}),
    # Bodies in another charset, read as UTF-8: the key with NULs between its characters (invisible on a terminal).
    "500 utf-16le json": lambda k, r: _http(
        "500 Error",
        json.dumps({"message": f"Bearer {k}"}).encode("utf-16-le"),
        {"Content-Type": "application/json; charset=utf-16le"},
    ),
    "503 utf-16be text": lambda k, r: _http(
        "503 Unavailable", f"Bearer {k}".encode("utf-16-be"), {"Content-Type": "text/plain; charset=utf-16be"}
    ),
    "non-json utf-32": lambda k, r: _http(
        "200 OK", f"{_filler(r, 5)} {k}".encode("utf-32"), {"Content-Type": "text/plain; charset=utf-32"}
    ),
    "redirect triple": lambda k, r: _http(
        "302 Found",
        b"",
        {"Location": "https://x.example/?t=" + urllib.parse.quote(url_encoded(k, r), safe="").replace("%", "%25")},
    ),
    # The key interleaved with what renders as nothing: ANSI colour codes, zero-width spaces.
    "400 ansi interleaved": lambda k, r: _http(
        "400 Bad Request", ("".join(f"\x1b[{r.randrange(40)}m{c}" for c in k)).encode()
    ),
    "errors zero-width": lambda k, r: _http(
        "200 OK",
        _status_json(disposition="FAILED", errors=json.dumps(["\u200b".join(k), "\u2060".join(k)])),
    ),
}


class EchoServer:
    """Answers every request with ``script(key from its Authorization header, rnd)``, then closes."""

    def __init__(self) -> None:
        self.script: Script = CHANNELS["401 json"]
        self.rnd = random.Random(0)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> EchoServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        self._loop.run_until_complete(server.wait_closed())
        self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            match = re.search(r"(?im)^authorization: bearer (\S+)\r$", head)
            writer.write(self.script(match.group(1) if match else "", self.rnd))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    with EchoServer() as server:
        yield server


class Records(logging.Handler):
    """Every record the ``portable_wait`` logger emits at DEBUG, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def install(self) -> None:
        # The in-process CLI replaces the logger's handlers: put this one back before each check.
        logger = logging.getLogger("portable_wait")
        if self not in logger.handlers:
            logger.addHandler(self)
        logger.setLevel(logging.DEBUG)
        self.lines.clear()


@pytest.fixture
def records() -> Iterator[Records]:
    logger = logging.getLogger("portable_wait")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    handler = Records()
    try:
        yield handler
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved


# -- what is checked ----------------------------------------------------------------------------------------


async def _library_wait(
    base_url: str, key: str, many: bool
) -> tuple[Any, list[PollEvent], dict[str, Any], BaseException | None]:
    events: list[PollEvent] = []
    group: BaseException | None = None
    async with PortableClient(key, base_url=base_url, retry=FAST_RETRY) as client:
        try:
            outcome: Any = await wait_for_completion(client, WID, timeout=0.3, poll=FAST_POLL, on_poll=events.append)
        except Exception as error:
            outcome = error
        payload = redact_event({"results": {str(WID): outcome_to_json(WID, outcome)}}, key)
        if many:  # the fan-out raises an exception group of every failure
            try:
                await wait_for_many(client, [WID], timeout=0.3, poll=FAST_POLL)
            except Exception as error:
                group = error
    return outcome, events, payload, group


def check_library(server: EchoServer, key: str, records: Records, *, many: bool = False) -> Any:
    records.install()
    outcome, events, payload, group = asyncio.run(_library_wait(server.base_url, key, many))
    if group is not None:
        assert_exception_clean(group, key)
    if isinstance(outcome, BaseException):
        assert_exception_clean(outcome, key)
    else:
        assert_clean(repr(outcome), key, "the returned status")
    assert events, "the wait polled at least once"
    for event in events:
        assert_clean(repr(event), key, "a PollEvent")
        if event.error is not None:
            assert_exception_clean(event.error, key)
    assert_clean(json.dumps(payload), key, "an outcome's JSON / Airflow event payload")
    assert_clean("\n".join(records.lines), key, "the DEBUG log")
    return outcome


def check_cli(server: EchoServer, key: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[str, str]:
    capsys.readouterr()
    os.environ["PORTABLE_API_KEY"] = key
    try:
        code = portable_wait.cli.main(
            [
                *args,
                "--base-url",
                server.base_url,
                *(
                    ["--timeout", "0.3", "--poll-initial", "0.01", "--poll-max", "0.02", "--outage-tolerance", "0.05"]
                    if args[0] == "wait"
                    else []
                ),
                str(WID),
            ]
        )
    finally:
        del os.environ["PORTABLE_API_KEY"]
    out, err = capsys.readouterr()
    assert code in (0, 1, 3, 4), (code, err)
    assert_clean(out, key, f"the CLI's stdout ({' '.join(args)})")
    assert_clean(err, key, f"the CLI's stderr ({' '.join(args)})")
    return out, err


@pytest.fixture
def fast_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI's client with retries that take milliseconds: retry timing is not what is tested here.
    monkeypatch.setattr(portable_wait.cli, "PortableClient", functools.partial(PortableClient, retry=FAST_RETRY))
    monkeypatch.delenv("PORTABLE_BASE_URL", raising=False)


# -- the tests ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_secrets_no_channel_shows_the_key(
    channel: str, echo: EchoServer, records: Records, capsys: pytest.CaptureFixture[str], fast_cli: None
) -> None:
    echo.script, echo.rnd = CHANNELS[channel], random.Random(channel)
    check_library(echo, NASTY_KEY, records, many=True)
    check_cli(echo, NASTY_KEY, capsys, "wait", "--json", "-vv")
    check_cli(echo, NASTY_KEY, capsys, "wait", "-vv")
    check_cli(echo, NASTY_KEY, capsys, "status", "--json", "-vv")


def test_secrets_channels_really_carry_the_key(echo: EchoServer) -> None:
    """The checker is not blind: unredacted, every channel's answer shows the key in some form."""
    for name, script in CHANNELS.items():
        answer = script(NASTY_KEY, random.Random(name)).decode("latin-1")
        assert leaked_pieces(answer, NASTY_KEY), name


def test_secrets_parser_errors_quote_the_key_before_redaction() -> None:
    """aiohttp's parser really does quote the bytes: the redaction of its message is what keeps them out."""
    import aiohttp

    async def probe() -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(CHANNELS["status line"](NASTY_KEY, random.Random(0)))
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/") as response:
                await response.read()
        except aiohttp.ClientResponseError as exc:
            return str(exc)
        finally:
            server.close()
        return ""

    assert NASTY_KEY in asyncio.run(probe())


# The library's own words (its source: messages, field and attribute names, help). A key with a piece among them
# (Hypothesis likes to try constants it finds in the code: "retry_after", "workflow") cannot be told apart from
# the text around it, and no real key is an English word: such keys are skipped.
LIBRARY_TEXT = "\n".join(p.read_text(encoding="utf-8") for p in Path(portable_wait.__file__).parent.glob("*.py"))


@functools.cache
def library_pieces() -> frozenset[str]:
    """Every 8 characters of the library's text, as it is or decoded, that a key's piece could be.

    Built once: decoding and searching 300 kB of source for every example took longer than the example's own
    run. A piece is made of the key alphabet's characters (its base64 forms use the same ones), so only runs of
    those can hold one.
    """
    runs = (run for view in text_views(LIBRARY_TEXT) for run in re.findall(f"[{re.escape(KEY_ALPHABET)}]{{8,}}", view))
    return frozenset(run[start : start + 8] for run in runs for start in range(len(run) - 7))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(key="00000000", channel="redirect lower", seed=1)  # "?t=00%300...": "=00" read as quoted-printable
@given(
    key=st.text(KEY_ALPHABET, min_size=8, max_size=80),
    channel=st.sampled_from(sorted(CHANNELS)),
    seed=st.integers(0, 2**32),
)
def test_secrets_property_no_piece_of_any_key_escapes(
    key: str,
    channel: str,
    seed: int,
    echo: EchoServer,
    records: Records,
    capsys: pytest.CaptureFixture[str],
    fast_cli: None,
) -> None:
    assume(library_pieces().isdisjoint(key_pieces(key)))
    echo.script, echo.rnd = CHANNELS[channel], random.Random(seed)
    check_library(echo, key, records)
    check_cli(echo, key, capsys, "wait", "--json", "-vv")


def test_secrets_cli_subprocess_shows_no_key(echo: EchoServer) -> None:
    echo.script, echo.rnd = CHANNELS["errors"], random.Random(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTABLE_")}
    env["PORTABLE_API_KEY"] = NASTY_KEY
    for args in (["wait", "--json", "-vv"], ["status", "-vv"]):
        done = subprocess.run(
            [sys.executable, "-m", "portable_wait", *args, "--base-url", echo.base_url, str(WID)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode in (1, 0), done.stderr
        if "--json" in args:
            assert "[redacted]" in done.stdout  # the run's errors, with the key taken out
        assert_clean(done.stdout, NASTY_KEY, "stdout")
        assert_clean(done.stderr, NASTY_KEY, "stderr")

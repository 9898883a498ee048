"""Unit-test set-up: make aioresponses 0.7.x work with aiohttp 3.14.

aiohttp 3.14 (a security release, so we do not pin below it) added a required ``stream_writer`` argument to
``ClientResponse``; aioresponses 0.7.9 does not pass it (pnuckowski/aioresponses#289). The shim hands it a
stand-in that reports zero bytes written, which is all a finished, mocked request needs.
"""

from __future__ import annotations

import inspect
from typing import Any

import aiohttp.client_reqrep
import aioresponses.core


class _SentStreamWriter:
    output_size = 0


class _CompatClientResponse(aiohttp.client_reqrep.ClientResponse):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _SentStreamWriter())
        super().__init__(*args, **kwargs)


if "stream_writer" in inspect.signature(aiohttp.client_reqrep.ClientResponse.__init__).parameters:
    aioresponses.core.ClientResponse = _CompatClientResponse  # type: ignore[attr-defined]

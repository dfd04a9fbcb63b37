"""Helpers shared by the Python interop tests (not fixtures: those are in conftest.py)."""

from __future__ import annotations

import urllib.request

# Text that must survive JSON and MessagePack round trips: accents, CJK, an emoji outside
# the BMP (a surrogate pair in UTF-16), a combining mark.
UNICODE_TEXT = "héllo wörld ✓ 日本語 🎉 e\u0301"

# Error texts as ASP.NET Core writes them with detailed errors on (interop contract).
THROW_TEXT = "An unexpected error occurred invoking 'ThrowException' on the server. InvalidOperationException: {}"
ADD_ARGS_TEXT = (
    "Failed to invoke 'Add' due to an error on the server. "
    "InvalidDataException: Invocation provides 1 argument(s) but target expects 2."
)
STREAM_THROW_TEXT = (
    "An unexpected error occurred invoking 'StreamThrowException' on the server. InvalidOperationException: {}"
)


def fetch_token(server_url: str, user: str | None = None) -> str:
    """A bearer token from `GET /generateJwtToken[/{user}]`."""
    path = "/generateJwtToken" if user is None else f"/generateJwtToken/{user}"
    with urllib.request.urlopen(server_url + path, timeout=5) as response:
        assert response.status == 200
        return response.read().decode("utf-8")

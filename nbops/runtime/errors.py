"""The runtime's two errors, and the one-line form of an exception's text they quote.

    PackageError (Exception)      bad or missing package, sha256 mismatch, untrusted types
    InputError (ValueError)       a prediction input that does not fit the signature; `.status`
                                  is the HTTP status it maps to (422, or 413 for oversized)
    CaptureError (Exception)      request capture cannot start as asked: a folder it cannot
                                  write, a URL without fsspec, a sample rate out of range
"""

from __future__ import annotations

import sys


class PackageError(Exception):
    """The package cannot be used: missing or unreadable files, a sha256 mismatch, untrusted types."""


class InputError(ValueError):
    """A prediction input that does not fit the model's signature; the message names the problem."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class CaptureError(Exception):
    """Request capture cannot start as asked; the message names the option and the fix."""


def short(exc: BaseException, limit: int = 300) -> str:
    """An exception's text on one line, cut at `limit` characters."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def say(line: str) -> None:
    """One line for the person at the terminal, on stderr (stdout may carry scored CSV)."""
    print(line, file=sys.stderr, flush=True)

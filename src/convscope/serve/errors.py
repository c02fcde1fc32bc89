"""Errors of the HTTP API: every failure answers ``{"error": ..., "type": ...}``
(:func:`convscope.schemas.error`)."""

from __future__ import annotations


class ApiError(Exception):
    """A request the server refuses, with its HTTP status, the error type and optional headers.

    Args:
        status (int): HTTP status code (400-599).
        message (str): one line saying what is wrong, what was expected and what was received.
        type_ (str, default 'RequestError'): the ``type`` field of the error body.
        headers (dict, optional): extra response headers (``Retry-After`` on 503).
    """

    def __init__(self, status: int, message: str, type_: str = "RequestError", headers: dict | None = None):
        super().__init__(message)
        self.status = int(status)
        self.message = message
        self.type = type_
        self.headers = dict(headers or {})


def too_large(message: str) -> ApiError:
    return ApiError(413, message, "PayloadTooLarge")


def unsupported(message: str) -> ApiError:
    return ApiError(415, message, "UnsupportedMediaType")


def invalid(message: str, type_: str = "ValidationError") -> ApiError:
    return ApiError(422, message, type_)


def not_found(message: str) -> ApiError:
    return ApiError(404, message, "NotFound")


def busy(message: str, retry_after: int = 1) -> ApiError:
    return ApiError(503, message, "ServiceUnavailable", {"Retry-After": str(int(retry_after))})


def timed_out(seconds: float) -> ApiError:
    return ApiError(504, f"the request ran past the server's timeout of {seconds:g} s", "Timeout")

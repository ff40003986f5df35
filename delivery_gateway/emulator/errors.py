"""Twilio-shaped REST errors: the exception the routes raise and the JSON body Twilio answers with.

Never decides when an error happens (routes and the fault injector do); only how it looks on the wire.
"""

from __future__ import annotations

from starlette.responses import JSONResponse

MORE_INFO = "https://www.twilio.com/docs/errors/{code}"


class TwilioError(Exception):
    """An error response: HTTP `status`, Twilio error `code`, human `message`, optional extra headers."""

    def __init__(self, status: int, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": MORE_INFO.format(code=self.code),
            "status": self.status,
        }

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def not_found(path: str) -> TwilioError:
    return TwilioError(404, 20404, f"The requested resource {path} was not found")


def unauthorized() -> TwilioError:
    return TwilioError(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})


def bad_request(message: str, code: int = 20001) -> TwilioError:
    return TwilioError(400, code, message)


def conflict(message: str, code: int) -> TwilioError:
    return TwilioError(409, code, message)


def rate_limited(retry_after: int | None) -> TwilioError:
    """429/20429, with `Retry-After` only when a value is given: Twilio's 20429 page asks clients to back off
    exponentially and documents no Retry-After for the Conversations API."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return TwilioError(429, 20429, "Too Many Requests", headers)


def server_error(status: int) -> TwilioError:
    if status == 500:
        return TwilioError(500, 20500, "Internal Server Error")
    return TwilioError(status, 20000 + status, "Service Unavailable" if status == 503 else "Server Error")

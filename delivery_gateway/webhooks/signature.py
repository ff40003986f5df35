"""Checks X-Twilio-Signature against the URL Twilio called (the public URL behind a proxy).

Never accepts a request it could not verify: no auth token configured means every webhook is refused.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request

# twilio >= 9.13 (pinned) names the algorithm in X-Twilio-Webhooks-Signature-Settings.
from twilio.request_validator import RequestValidator, get_signature_algorithm


def called_url(request: Request, public_url: str | None) -> str:
    """The URL Twilio signed: `public_url` + path (+ query) behind a proxy, else the URL as received."""
    if not public_url:
        return str(request.url)
    query = request.url.query
    return public_url.rstrip("/") + request.url.path + (f"?{query}" if query else "")


def signature_valid(
    auth_token: str | None,
    url: str,
    params: Mapping[str, object],
    signature: str | None,
    settings_header: str | None = None,
) -> bool:
    if not auth_token or not signature:
        return False
    algorithm = get_signature_algorithm(settings_header) if settings_header else None
    return RequestValidator(auth_token).validate(url, params, signature, algorithm)

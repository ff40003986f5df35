"""Checks X-Twilio-Signature against the URL Twilio called (the public URL behind a proxy).

Never accepts a request it could not verify: no auth token configured means every webhook is refused. Never
computes an HMAC it does not need: the URL as called first, the port variants only when it does not match.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Iterator, Mapping
from urllib.parse import urlparse

from starlette.datastructures import URL

# twilio >= 9.13 (pinned) names the algorithm in X-Twilio-Webhooks-Signature-Settings.
from twilio.request_validator import (
    HMAC_SHA1,
    RequestValidator,
    add_port,
    get_signature_algorithm,
    remove_port,
)


class SignedParams(dict[str, list[str]]):
    """A form as Twilio signs it: every value of every parameter, in the order received.

    `getall` is the accessor twilio's RequestValidator asks a multi-valued mapping for first."""

    @classmethod
    def of(cls, items: Iterable[tuple[str, str]]) -> SignedParams:
        params = cls()
        for name, value in items:
            params.setdefault(name, []).append(value)
        return params

    def getall(self, name: str) -> list[str]:
        return self[name]

    def last_values(self) -> dict[str, str]:
        """One value per parameter, the last one (what a form read as a plain mapping gives)."""
        return {name: values[-1] for name, values in self.items()}


def called_url(url: URL, public_url: str | None) -> str:
    """The URL Twilio signed: `public_url` + path (+ query) behind a proxy, else the URL as received (`url`: the
    request's, `request.url` or `URL(scope=scope)`)."""
    if not public_url:
        return str(url)
    query = url.query
    return public_url.rstrip("/") + url.path + (f"?{query}" if query else "")


def signature_valid(
    auth_token: str | None,
    url: str,
    params: Mapping[str, object],
    signature: str | None,
    settings_header: str | None = None,
) -> bool:
    """RequestValidator.validate's rule (the URL with and without its port both verify) for one HMAC per valid
    request: validate itself always computes both."""
    if not auth_token or not signature:
        return False
    algorithm = get_signature_algorithm(settings_header) if settings_header else HMAC_SHA1
    validator = RequestValidator(auth_token)
    expected = signature.encode()
    try:
        for candidate in _url_variants(url):
            if hmac.compare_digest(validator.compute_signature(candidate, params, algorithm).encode(), expected):
                return True
    except ValueError:  # an algorithm this twilio release does not know: validate logs it and refuses
        return validator.validate(url, params, signature, algorithm)
    return False


def _url_variants(url: str) -> Iterator[str]:
    """The URL as called, then (only when that did not verify) the other spellings of its port that Twilio may have
    signed (with or without)."""
    yield url
    parsed = urlparse(url)
    for variant in dict.fromkeys((remove_port(parsed), add_port(parsed))):
        if variant != url:
            yield variant

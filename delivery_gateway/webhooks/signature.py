"""Checks X-Twilio-Signature against the URL Twilio called (the public URL behind a proxy).

Never accepts a request it could not verify: no auth token configured means every webhook is refused. Never
computes an HMAC it does not need: the URL as called first, the port variants only when it does not match.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlparse

from starlette.datastructures import URL

# twilio >= 9.13 (pinned) names the algorithm in X-Twilio-Webhooks-Signature-Settings.
from twilio.request_validator import (
    HMAC_SHA1,
    HMAC_SHA256,
    RequestValidator,
    add_port,
    get_signature_algorithm,
    remove_port,
)

# The algorithms RequestValidator.compute_signature knows, by the name the settings header gives (upper-cased).
_DIGESTS = {HMAC_SHA1: hashlib.sha1, HMAC_SHA256: hashlib.sha256}


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
    params: SignedParams,
    signature: str | None,
    settings_header: str | None = None,
) -> bool:
    """RequestValidator.validate's rule (the URL with and without its port both verify) for one HMAC per valid
    request: validate itself always computes both, each through compute_signature's string building."""
    if not auth_token or not signature:
        return False
    algorithm = get_signature_algorithm(settings_header) if settings_header else HMAC_SHA1
    digest = _DIGESTS.get(algorithm.upper())
    if digest is None:  # an algorithm this twilio release does not know: validate logs it and refuses
        return RequestValidator(auth_token).validate(url, params, signature, algorithm)
    key = auth_token.encode()
    signed = _signed_params(params)
    expected = signature.encode()
    return any(  # constant-time comparison, as RequestValidator's own `compare`
        hmac.compare_digest(compute_signature(key, candidate, signed, digest), expected)
        for candidate in _url_variants(url)
    )


def compute_signature(key: bytes, url: str, signed_params: str, digest: Callable[..., Any]) -> bytes:
    """RequestValidator.compute_signature's value (base64 of the HMAC of the URL and the parameters).

    From a copy of the key's HMAC state, keyed once: `hmac.digest` would set the key up again on every call, and
    releases the GIL around it, so under load the event loop's thread waits for the ledger's to hand it back."""
    mac = _keyed(key, digest).copy()
    mac.update((url + signed_params).encode())
    return base64.b64encode(mac.digest())


@functools.lru_cache(maxsize=8)
def _keyed(key: bytes, digest: Callable[..., Any]) -> hmac.HMAC:
    """The HMAC state after the key (never updated itself: each signature works on a copy)."""
    return hmac.new(key, digestmod=digest)


def _signed_params(params: SignedParams) -> str:
    """What compute_signature appends to the URL: each name (sorted) followed by each of its distinct values
    (sorted), concatenated."""
    return "".join(
        name + (values[0] if len(values) == 1 else name.join(sorted(set(values))))
        for name, values in sorted(params.items())
    )


def _url_variants(url: str) -> Iterator[str]:
    """The URL as called, then (only when that did not verify) the other spellings of its port that Twilio may have
    signed (with or without)."""
    yield url
    parsed = urlparse(url)
    for variant in dict.fromkeys((remove_port(parsed), add_port(parsed))):
        if variant != url:
            yield variant

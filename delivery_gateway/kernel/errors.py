"""The base of every failure a caller may be shown, named by a stable code (GraphQL's `extensions.code`).

Declares only; never decides how a failure is presented (graphql/errors.py does) and never carries secrets.
"""

from __future__ import annotations

from typing import ClassVar


class CodedError(Exception):
    """A failure the caller caused or may see; `code` names it for clients (BAD_USER_INPUT, FORBIDDEN...)."""

    code: ClassVar[str] = "GATEWAY_ERROR"

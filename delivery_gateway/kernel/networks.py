"""IP addresses and networks named in settings (`10.0.0.5`, `10.0.0.0/8`, `::1`, or `*` for every peer).

Parsing only: what a listed peer may do is decided where the list is used (http/forwarded.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

ALL = "*"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Iterable[str]) -> list[Network]:
    """Addresses or CIDR networks, `*` skipped; ValueError naming the first entry that is neither."""
    networks: list[Network] = []
    for entry in entries:
        entry = entry.strip()
        if not entry or entry == ALL:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network (e.g. 10.0.0.5, 10.0.0.0/8, or *)") from None
    return networks

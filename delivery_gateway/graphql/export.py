"""`python -m delivery_gateway.graphql.export`: prints the sorted SDL that `schema.graphql` must equal.

Prints only; never writes files (redirect the output to update schema.graphql).
"""

from __future__ import annotations

import sys

from delivery_gateway.graphql.schema import schema_sdl


def main() -> None:
    sys.stdout.write(schema_sdl())


if __name__ == "__main__":
    main()

"""`seedqa-models`: the offline model builders."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `seedqa-models` command line; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="seedqa-models",
        description="Build the models the inspection appliance loads.",
    )
    parser.add_subparsers(dest="command", metavar="COMMAND")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

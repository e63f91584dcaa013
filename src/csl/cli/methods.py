"""``csl methods [show NAME]``: registered methods and components, and the variants' five parts."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

COMMANDS = ("methods",)


def add_parsers(sub: Any) -> None:
    m = sub.add_parser("methods", help="list methods, components and the variants in params.yaml",
                       description="list methods, components and the variants in params.yaml; "
                                   "'csl methods show NAME' prints a method's defaults or a variant's composition")
    m.add_argument("action", nargs="?", choices=["show"], help="show one method or variant")
    m.add_argument("name", nargs="?", help="method or variant name (with 'show')")


def run(args: argparse.Namespace, project: Path, params_path: Path) -> int:
    from csl import catalog
    from csl.errors import ConfigError
    from csl.params import load_params

    variants = load_params(params_path).methods if params_path.is_file() else None
    if args.action == "show":
        if not args.name:
            raise ConfigError("usage: csl methods show NAME (a method or a variant in params.yaml)")
        print(catalog.show(args.name, variants))
    else:
        print(catalog.listing(variants))
    return 0

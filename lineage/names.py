"""Names that users give (sets, imported filters, builds): checked so they never become paths or SQL."""

import re

from lineage.errors import LineageError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(kind: str, name: str) -> str:
    if not _NAME.match(name) or ".." in name:
        raise LineageError(
            f"{kind} name `{name}` is not allowed: use letters, digits, `.`, `_` and `-` (max 128), "
            "starting with a letter or digit"
        )
    return name

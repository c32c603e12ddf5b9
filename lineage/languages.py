"""Language tags as BCP 47 writes them (`en`, `pt-BR`, `zh-Hant-TW`, `es-419`), so an auditor can group by them."""

from __future__ import annotations

import re

from lineage.errors import UsageError

# language (2-3 letters, or `und`), optional script (4 letters), region (2 letters or 3 digits), variants,
# extensions and a private-use part: the shapes RFC 5646 allows, without the registry lookup.
BCP47 = (
    r"(?:[A-Za-z]{2,3}(?:-[A-Za-z]{4})?(?:-(?:[A-Za-z]{2}|[0-9]{3}))?"
    r"(?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*"
    r"(?:-[0-9A-WYZa-wyz](?:-[A-Za-z0-9]{2,8})+)*(?:-[xX](?:-[A-Za-z0-9]{1,8})+)?"
    r"|[xX](?:-[A-Za-z0-9]{1,8})+)"
)
BCP47_SQL = BCP47.replace("'", "''")  # for a SQL string literal (there are none; kept honest)


def check_language(value: str, name: str = "language") -> str:
    """`value` if it is a BCP 47 tag; else a LineageError naming option `name` as the caller wrote it."""
    if re.fullmatch(BCP47, value):
        return value
    hint = f" (`{value.replace('_', '-')}`?)" if re.fullmatch(BCP47, value.replace("_", "-")) else ""
    raise UsageError(name, value, f" is not a BCP-47 language tag{hint}; write e.g. `en`, `pt-BR`, `zh-Hant`")

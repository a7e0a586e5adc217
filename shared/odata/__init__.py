"""OData `$filter` support shared by the mapping engine (in-process evaluation, translation to the
source API's `$filter`) and the local emulators (server-side evaluation).

Parsing is odata-query's; this package only evaluates its syntax tree against a record and prints it back.
"""

from __future__ import annotations

from shared.odata.filter import (
    ODataFilterError,
    evaluate_filter,
    filter_fields,
    format_filter,
    parse_filter,
    pin_field,
)

__all__ = ["ODataFilterError", "evaluate_filter", "filter_fields", "format_filter", "parse_filter", "pin_field"]

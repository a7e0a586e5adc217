"""What the engine reads of a record: `$select` of the fields a mapping uses, not the whole entity.

Finance and Operations data entities carry hundreds of fields (CustomersV3 has about 300), Dataverse tables
hundreds of columns; the engine needs a few. A read for a mapping asks for: every enabled field's attribute
as the side returns it (`_x_value` for Dataverse lookups), fields a transform combines, the natural key, the
fields of every filter on the same entity (routes choose among mappings by them), the modified-on field. The
connector adds what a `Record` itself needs (ids, etags, F&O key properties). A `field_lookup` transform reads
a related record through `$expand`: such a mapping reads everything.
"""

from __future__ import annotations

from shared.mapping import Pack, Side, TableMapping, effective_filter, read_name
from shared.odata import filter_fields
from shared.sync.keys import read_names


def fields_to_read(pack: Pack, mapping: TableMapping, side: Side, modified: str | None) -> list[str] | None:
    """The `$select` of a read of `side` for `mapping` (whose modified-on field is `modified`), or None to read
    every field."""
    if mapping.expands(side):
        return None
    names: set[str] = set()
    for f in mapping.fields:
        if not f.enabled:
            continue
        if name := read_name(mapping, f, side):
            names.add(name)
        for transform in [*f.transforms, *(f.reverse_transforms or [])]:
            names.update(getattr(transform, "fields", None) or ())
    names.update(read_names(mapping, side))
    entity = mapping.entity(side).entity
    for other in pack.mappings:
        if other.entity(side).entity == entity and (text := effective_filter(other, side)):
            names |= filter_fields(text)
    if modified:
        names.add(modified)
    return sorted(names)

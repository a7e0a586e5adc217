"""The JSON form of `RemoteExecutionContext` that webhooks receive (Microsoft Learn, "Use WebHooks to create
external handlers for server events"; PROTOCOLS.md §2): typed values (`/Date(ms)/`, OptionSetValue,
EntityReference, Money), the Target as an Entity (Create/Update) or an EntityReference (Delete)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from emulators.common.store import Change
from emulators.dataverse.payload import LOGICAL_ANNOTATION, parse_datetime
from emulators.dataverse.schema import TableDef

_NS = ":http://schemas.microsoft.com/xrm/2011/Contracts"
MESSAGES = {"created": "Create", "updated": "Update", "deleted": "Delete"}


def wcf_date(value: dt.datetime | str) -> str:
    when = parse_datetime(value) if isinstance(value, str) else value
    if when is None:
        return str(value)
    return f"/Date({int(when.timestamp() * 1000)})/"


def entity_reference(logical: str | None, rid: str | None, name: str | None = None) -> dict[str, Any]:
    return {"__type": "EntityReference" + _NS, "Id": rid, "KeyAttributes": [], "LogicalName": logical,
            "Name": name, "RowVersion": None}


def typed_value(table: TableDef, field: str, row: dict[str, Any]) -> tuple[str, Any]:
    """(attribute logical name, value in the data contract's JSON form)."""
    attr = table.by_field(field)
    value = row.get(field)
    if attr is None:
        return field, value
    if value is None:
        return attr.name, None
    if attr.type == "lookup":
        return attr.name, entity_reference(row.get(field + LOGICAL_ANNOTATION), value)
    if attr.type == "option":
        return attr.name, {"__type": "OptionSetValue" + _NS, "Value": value}
    if attr.type == "money":
        return attr.name, {"__type": "Money" + _NS, "Value": value}
    if attr.type == "datetime":
        return attr.name, wcf_date(value)
    return attr.name, value


def entity(table: TableDef, row: dict[str, Any], fields: list[str] | None = None) -> dict[str, Any]:
    """An `Entity` with the given stored fields (all when None), annotations left out."""
    names = [f for f in (fields if fields is not None else row) if "@" not in f and table.by_field(f)]
    return {"__type": "Entity" + _NS,
            "Attributes": [dict(zip(("key", "value"), typed_value(table, f, row), strict=True)) for f in names],
            "EntityState": None, "FormattedValues": [], "Id": row.get(table.key), "KeyAttributes": [],
            "LogicalName": table.logical, "RelatedEntities": [],
            "RowVersion": str(row["versionnumber"]) if row.get("versionnumber") is not None else None}


def target(table: TableDef, change: Change) -> dict[str, Any]:
    if change.kind == "deleted":
        return entity_reference(table.logical, change.record_id)
    after = change.after or {}
    if change.kind == "created":
        fields = [f for f, v in after.items() if v is not None]
    else:  # Update: the changed attributes plus what the platform sets on every update
        fields = [*sorted(change.changed_fields), "modifiedon", "_modifiedby_value", table.key]
    return entity(table, after, list(dict.fromkeys(fields)))


def image_fields(table: TableDef, row: dict[str, Any], attributes: str | None) -> list[str]:
    if not attributes:
        return list(row)
    wanted = {a.strip().lower() for a in attributes.split(",") if a.strip()}
    return [f for f in row if table.attr_name(f) in wanted]


def build_context(*, table: TableDef, change: Change, step: dict[str, Any], images: list[dict[str, Any]],
                  organization_id: str, organization_name: str, aad_object_id: str | None,
                  correlation_id: str) -> dict[str, Any]:
    message = MESSAGES[change.kind]
    pre, post = [], []
    for image in images:
        kind = image.get("imagetype") or 0
        alias = image.get("entityalias") or image.get("name") or "image"
        if kind in (0, 2) and change.before is not None:
            pre.append({"key": alias, "value": entity(table, change.before,
                                                     image_fields(table, change.before, image.get("attributes")))})
        if kind in (1, 2) and change.after is not None:
            post.append({"key": alias, "value": entity(table, change.after,
                                                      image_fields(table, change.after, image.get("attributes")))})
    if step.get("mode") == 1 and change.after is not None:
        # Async steps always carry the record's primary name in this post image (as the service sends it).
        primary = table.attrs[table.primary_name].field
        post.append({"key": "AsynchronousStepPrimaryName", "value": entity(table, change.after, [primary])})
    return {
        "BusinessUnitId": str(uuid.uuid5(uuid.UUID(organization_id), "root-business-unit")),
        "CorrelationId": correlation_id,
        "Depth": 1,
        "InitiatingUserAzureActiveDirectoryObjectId": aad_object_id,
        "InitiatingUserId": change.actor.user_id,
        "InputParameters": [{"key": "Target", "value": target(table, change)}],
        "IsExecutingOffline": False,
        "IsInTransaction": False,
        "IsOfflinePlayback": False,
        "IsolationMode": 1,
        "MessageName": message,
        "Mode": step.get("mode", 1),
        "OperationCreatedOn": wcf_date(change.at),
        "OperationId": str(uuid.uuid4()),
        "OrganizationId": organization_id,
        "OrganizationName": organization_name,
        "OutputParameters": [{"key": "id", "value": change.record_id}] if message == "Create" else [],
        "OwningExtension": entity_reference("sdkmessageprocessingstep", step.get("sdkmessageprocessingstepid"),
                                            step.get("name")),
        "ParentContext": None,
        "PostEntityImages": post,
        "PreEntityImages": pre,
        "PrimaryEntityId": change.record_id,
        "PrimaryEntityName": table.logical,
        "RequestId": str(uuid.uuid4()),
        "SecondaryEntityName": "none",
        "SharedVariables": [],
        "Stage": step.get("stage", 40),
        "UserAzureActiveDirectoryObjectId": aad_object_id,
        "UserId": change.actor.user_id,
    }


def strip_oversized(context: dict[str, Any]) -> dict[str, Any]:
    """What the service sends when the context exceeds 256 KB: the receiver must fetch the record itself."""
    return {**context, "InputParameters": [], "PreEntityImages": [], "PostEntityImages": [], "ParentContext": None}

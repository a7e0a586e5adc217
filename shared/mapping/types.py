"""Small vocabularies shared by the mapping model and engine: sides, directions and policies."""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    """One of the two systems a mapping joins."""

    ERP = "erp"
    CRM = "crm"

    @property
    def other(self) -> Side:
        return Side.CRM if self is Side.ERP else Side.ERP


class Direction(StrEnum):
    """Which way data flows, for a table mapping or a single field."""

    TO_CRM = "to_crm"
    TO_ERP = "to_erp"
    BIDIRECTIONAL = "bidirectional"

    @classmethod
    def parse(cls, text: str) -> Direction:
        """Accept the YAML spelling (`to_crm`) and the CLI spelling (`to-crm`)."""
        return cls(text.strip().lower().replace("-", "_"))

    @property
    def source(self) -> Side:
        """The side data is read from (only for a one-way direction)."""
        if self is Direction.BIDIRECTIONAL:
            raise ValueError("a bidirectional flow has no single source side")
        return Side.ERP if self is Direction.TO_CRM else Side.CRM

    @property
    def target(self) -> Side:
        return self.source.other

    def allows(self, flow: Direction) -> bool:
        """True when data may flow in the one-way direction `flow` under this direction."""
        return self is Direction.BIDIRECTIONAL or self is flow

    @staticmethod
    def from_source(side: Side) -> Direction:
        return Direction.TO_CRM if side is Side.ERP else Direction.TO_ERP

    @property
    def arrow(self) -> str:
        return {"to_crm": "→", "to_erp": "←", "bidirectional": "⇄"}[self.value]


class ConflictPolicy(StrEnum):
    """What to do when both sides changed the same bidirectional field since the last sync."""

    ERROR = "error"
    ERP_WINS = "erp_wins"
    CRM_WINS = "crm_wins"
    NEWEST_WINS = "newest_wins"


class DeletionPolicy(StrEnum):
    """What to do when a coupled record is deleted on one side."""

    ERROR = "error"
    PROPAGATE = "propagate"
    RESTORE = "restore"
    REMOVE_COUPLING = "remove_coupling"


class System(StrEnum):
    """The systems a pack can join; the ERP side is one of the first two, the CRM side is Dataverse."""

    BUSINESS_CENTRAL = "business_central"
    FINANCE_OPERATIONS = "finance_operations"
    DATAVERSE = "dataverse"


# The field each system stamps on every write; used for incremental reads and newest-wins.
MODIFIED_FIELD: dict[System, str | None] = {
    System.BUSINESS_CENTRAL: "lastModifiedDateTime",
    System.DATAVERSE: "modifiedon",
    # F&O data entities carry no common modified-on field; business events drive F&O changes.
    System.FINANCE_OPERATIONS: None,
}

"""The admin API's core (functions/admin.py is its thin HTTP face): parameter parsing with clear errors
(`params`), the operations (`ops`) and the JSON shapes they answer with (`documents`)."""

from __future__ import annotations

from shared.admin.params import AdminError

__all__ = ["AdminError"]

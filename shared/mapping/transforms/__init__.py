"""Field transforms: a discriminated union on `type`, built from a small registry.

Import `Transform` for the pydantic annotation, `REGISTRY` to list what exists.
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from shared.mapping.transforms import composite, numeric, temporal, text  # noqa: F401  (they register)
from shared.mapping.transforms.base import REGISTRY, InverseKind, TransformBase, TransformContext

# The union is built from the registry so that adding a transform is one decorated class, nothing else.
Transform = Annotated[Union[tuple(REGISTRY.values())], Field(discriminator="type")]  # noqa: UP007

__all__ = ["REGISTRY", "InverseKind", "Transform", "TransformBase", "TransformContext"]

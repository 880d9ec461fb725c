"""JSON Schema of the resource documents, for editors (``dockyard schema``)."""

from __future__ import annotations

from typing import Any

from dockyard.spec.kinds import KINDS


def json_schema(kind: str | None = None) -> dict[str, Any]:
    if kind is not None:
        schema = KINDS[kind].model_json_schema(by_alias=True)
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        return schema
    defs: dict[str, Any] = {}
    variants = []
    for name, cls in KINDS.items():
        schema = cls.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
        defs.update(schema.pop("$defs", {}))
        defs[name] = schema
        variants.append({"$ref": f"#/$defs/{name}"})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://dockyard.dev/schemas/v1.json",
        "title": "Dockyard resource",
        "oneOf": variants,
        "$defs": defs,
    }

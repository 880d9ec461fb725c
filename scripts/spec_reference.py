"""Print the field tables of docs/spec.md from the spec models (run after changing a spec)."""

from __future__ import annotations

import json
from typing import Any

from dockyard.spec.kinds import KINDS


def type_of(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].split("/")[-1]
    if "anyOf" in schema:
        parts = [type_of(s, defs) for s in schema["anyOf"] if s.get("type") != "null"]
        return " or ".join(dict.fromkeys(parts))
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    t = schema.get("type", "any")
    if t == "array":
        return f"list of {type_of(schema.get('items', {}), defs)}"
    if t == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map of {type_of(schema['additionalProperties'], defs)}"
    if t == "object" and "additionalProperties" in schema:
        return "map of string"
    return str(t)


def table(name: str, schema: dict[str, Any], defs: dict[str, Any], seen: set[str]) -> list[str]:
    lines = [
        f"#### {name}",
        "",
        "| field | type | default | meaning |",
        "| --- | --- | --- | --- |",
    ]
    nested = []
    for field, prop in schema.get("properties", {}).items():
        default = prop.get("default", "required" if field in schema.get("required", []) else "")
        default_text = (
            ""
            if default == ""
            else f"`{json.dumps(default)}`"
            if default != "required"
            else "required"
        )
        desc = prop.get("description", "")
        lines.append(f"| `{field}` | {type_of(prop, defs)} | {default_text} | {desc} |")
        for ref in json.dumps(prop).split('"$ref": "#/$defs/')[1:]:
            nested.append(ref.split('"')[0])
    lines.append("")
    for ref in nested:
        if ref not in seen and ref in defs and "properties" in defs[ref]:
            seen.add(ref)
            lines += table(ref, defs[ref], defs, seen)
    return lines


def main() -> None:
    seen = {"Metadata"}
    for kind, cls in KINDS.items():
        schema = cls.model_json_schema(by_alias=True)
        defs = schema.get("$defs", {})
        spec_ref = schema["properties"]["spec"]["$ref"].split("/")[-1]
        print(f"### {kind}\n")
        print("\n".join(table(f"{kind}.spec ({spec_ref})", defs[spec_ref], defs, seen)))


if __name__ == "__main__":
    main()

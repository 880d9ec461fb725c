"""The model registry: versions, aliases, lineage."""

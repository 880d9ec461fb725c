"""The data layer: volumes, datasets, code snapshots and the artifact store."""

"""The dockyard command line (typer + rich)."""

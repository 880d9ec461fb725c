"""Reconcilers: plan (pure) and act (through the runtime) for every kind."""

"""Model runtimes: one per framework, all behind ``ModelRuntime``."""

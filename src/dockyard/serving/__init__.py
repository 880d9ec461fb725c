"""The model server: Open Inference Protocol v2 over HTTP, model runtimes, batching."""

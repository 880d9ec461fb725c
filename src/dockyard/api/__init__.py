"""The REST API (FastAPI): one router per resource kind, problem+json errors."""

"""The handlers of the API routes declared in `taskflowd.api.routes`, each module imported on
the first request to one of its routes."""

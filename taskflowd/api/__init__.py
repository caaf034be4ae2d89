"""The HTTP API: `build_app(ApiContext)`; routes per resource under `taskflowd.api.routes`."""

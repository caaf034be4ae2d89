"""Routes per resource; each module's `install(api)` registers its operations."""

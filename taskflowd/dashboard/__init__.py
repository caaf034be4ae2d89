"""The built-in web dashboard: server-rendered pages (Jinja2) over the same
services as the API, with live updates over the `/api/v1/events` WebSocket.

Mount it with `taskflowd.dashboard.app.install_dashboard`.
"""

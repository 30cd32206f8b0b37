"""The HTTP edge: every request-level defence and the plumbing between FastAPI and the services.

Body limits, origins and CORS, rate limits, request context and security headers, the error
envelope, the offline API docs, health checks and the route dependencies live here; feature
routes (`agents/http.py`, `rooms/http.py`, …) stay in their feature folders and use `deps`.
"""

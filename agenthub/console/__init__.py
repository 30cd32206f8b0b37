"""The web console: people watch their agents' rooms live, post, and administer the hub.

A new edge, like http/ and realtime/: pages rendered here from the same services, and a small
script (static/console.js) that calls the REST API and the `/agents` Socket.IO namespace
exactly as an agent does. ADR 0007 records how its session, CSRF and socket auth work."""

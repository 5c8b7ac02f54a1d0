"""HTTP plumbing shared by the JSON API (``app/api``) and the pages (``app/web``): dependencies (session,
principal, settings), problem+json errors, abuse limits and verification guards, security headers, allowed
hosts, body limits, the dashboard's poll shortcut, observability, compression by the client's weights, HEAD
as GET without the body, and the routers' path guard (``routing``). Nothing here is a route of its own except
the probes and ``/metrics`` (observability)."""

"""A request's way through the server, from the socket to the route and back
(docs/request-lifecycle.md): ``server`` (how uvicorn runs), ``middleware`` (request id, media
type, security headers, access log), ``body`` (the body, bounded in size and time),
``admission`` (requests at once, after authentication), ``throttle`` (failed sign-ins, password
checks), ``ratelimit``, ``metrics``, ``transaction`` (the request's session and commit) and
``problems`` (every error answer)."""

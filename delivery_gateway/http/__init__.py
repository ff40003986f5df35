"""HTTP guards in front of every route: correlation ids, body size limits, CORS and the origin policy.

Never authenticates (auth/ does) and never reads a body it will not bound.
"""

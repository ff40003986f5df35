"""The shared kernel: plain records, SID syntax, callers, settings and metrics that every other part uses.

Never imports anything of the gateway above it (delivery rules, storage, upstream, webhooks, GraphQL, the app).
"""

"""The GraphQL API: the view (HTTP, WebSocket, SSE), the request context, schema assembly, limits, the one error
path and the one access rule, and one package per domain (participant, delivery, message, conversation, live),
each with types.py, resolvers.py, dataloaders.py and schema.py (its root fields).

Never imported by storage (ledger, cache, pub/sub), upstream, webhooks or the change stream: arrows point here.
"""

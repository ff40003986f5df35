"""Field logic of the GraphQL API: loaders, access checks, paging and delivery rules over plain records.

Never imports Strawberry types (schema/ wraps what these return) and never calls upstream outside loaders.py.
"""

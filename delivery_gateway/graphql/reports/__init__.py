"""The reports domain of the GraphQL API: delivery reports and failed messages, answered by the ledger across a
Conversation Service's conversations (API-key callers only)."""

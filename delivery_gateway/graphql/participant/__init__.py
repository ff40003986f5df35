"""The participant domain of the GraphQL API: Participant (a chat identity or a messaging binding)."""

"""The conversation domain of the GraphQL API: Conversation, listing conversations, the inbox roll-up."""

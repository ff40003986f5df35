"""The message domain of the GraphQL API: Message, message windows, and the resendMessage mutation."""

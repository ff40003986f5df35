"""The live domain of the GraphQL API: subscriptions over the conversation change stream (changes/)."""

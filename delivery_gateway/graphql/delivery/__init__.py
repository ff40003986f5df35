"""The delivery domain of the GraphQL API: receipts, recipients, the delivery summary, errors, receipt history."""

"""Pure delivery rules: status order, channels, recipient states, ticks, unread counts, the delivery summary,
the receipt merge, Twilio's delivery error codes.

Never performs I/O and imports nothing of the gateway but the kernel: the ledger, webhooks and resolvers all
call these functions, so each rule has exactly one home.
"""

"""The GraphiQL page, served from the package's vendored assets instead of Strawberry's CDN page.

Never references another origin: React, GraphiQL, its explorer plugin and their CSS come from /static/vendor/.
"""

from __future__ import annotations

from starlette.responses import HTMLResponse

from delivery_gateway.pages.html import STATIC_HREF, render_page

DEFAULT_QUERY = """\
# delivery-gateway: Twilio Conversations delivery state over GraphQL.
#
# Run an operation with Ctrl-Enter (or the play button). Subscriptions run here too, over WebSocket:
#   subscription { deliveryUpdates(conversationSid: "CH…") { cursor receipt { status } message { ticks } } }
# Outside demo mode, give your credential in the Headers tab below:
#   {"Authorization": "Bearer <API key or Twilio Access Token>"}
# It is sent as a header over HTTP and in `connection_init` for subscriptions.

query Conversations {
  conversations(first: 10) {
    edges { node { sid uniqueName friendlyName state } }
  }
}
"""


def graphiql_page(*, demo_mode: bool) -> HTMLResponse:
    """GraphiQL for the endpoint that serves this page (its own URL); outside demo mode the Headers tab starts with
    an Authorization template."""
    config = {
        "defaultQuery": DEFAULT_QUERY,
        "defaultHeaders": "" if demo_mode else '{\n  "Authorization": "Bearer "\n}',
    }
    return render_page("graphiql.html", config, static=STATIC_HREF)

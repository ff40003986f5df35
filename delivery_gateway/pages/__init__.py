"""Pages a browser loads from the gateway: `/` (where to go), the offline GraphiQL page at /graphql, the live `/demo`
chat view, and the package's static assets under /static/ (our scripts and the vendored libraries).

Never serves data and never authenticates: every page is static HTML and JavaScript that calls /graphql with the
visitor's own credentials, so nothing here touches a backend or needs a caller.
"""

from delivery_gateway.pages.ide import graphiql_page
from delivery_gateway.pages.routes import STATIC_PATH, page_routes

__all__ = ["STATIC_PATH", "graphiql_page", "page_routes"]

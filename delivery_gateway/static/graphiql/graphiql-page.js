// Starts GraphiQL from the vendored bundles (no CDN). Settings come from the inert JSON block #graphiql-config.
// Queries and mutations go over HTTP with the Headers tab's headers; subscriptions over WebSocket
// (graphql-transport-ws, the graphql-ws client inside GraphiQL's bundle), with those headers as the
// `connection_init` payload, which is where the gateway reads a WebSocket's credentials.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("graphiql-config").textContent);
  var url = new URL(window.location.pathname, window.location.href); // this page is the GraphQL endpoint
  var wsUrl = new URL(url.toString());
  wsUrl.protocol = url.protocol === "https:" ? "wss:" : "ws:";

  var fetcher = GraphiQL.createFetcher({ url: url.toString(), subscriptionUrl: wsUrl.toString() });
  var explorer = GraphiQLPluginExplorer.explorerPlugin();

  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      plugins: [explorer],
      defaultQuery: config.defaultQuery,
      defaultHeaders: config.defaultHeaders,
      defaultEditorToolsVisibility: config.defaultHeaders ? "headers" : true,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false, // a pasted token is not written to localStorage
      inputValueDeprecation: true,
    }),
  );
})();

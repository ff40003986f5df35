// The /demo page: one conversation as a chat front end would draw it (messages with their ticks, every recipient's
// state with the error explained, the participants' read horizons), kept live by three subscriptions over
// graphql-transport-ws (the vendored graphql-ws client). After a dropped connection each subscription resumes with
// `after` = the last cursor it received, so missed events are replayed and none twice.
// Plain browser JavaScript, no build step; every value from the server reaches the page through textContent.
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("demo-config").textContent);
  var httpUrl = new URL(config.graphqlPath, window.location.href).toString();
  var wsUrl = (function () {
    var url = new URL(httpUrl);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.toString();
  })();
  var TOKEN_KEY = "delivery-gateway-demo-token"; // sessionStorage: forgotten when the tab closes

  var MESSAGE_FIELDS =
    "sid index author body dateCreated ticks " +
    "participant { sid channel } " +
    "recipients { channel status source errorCode updatedAt " +
    "participant { sid identity address channel } error { code name description retryable } }";
  var PARTICIPANT_FIELDS = "sid identity address channel lastReadMessageIndex lastReadAt";

  var CONVERSATIONS_QUERY =
    "query DemoConversations { conversations(first: 50) { edges { node { sid uniqueName friendlyName state } } } }";
  var CHAT_QUERY =
    "query DemoChat($sid: String!) { conversation(sid: $sid) { sid uniqueName friendlyName " +
    "participants { " + PARTICIPANT_FIELDS + " } " +
    "rollup { messages lastMessageIndex ticks { pending sent delivered read failed } " +
    "unread { count atLeast participant { sid } } } " +
    "messages(last: 50) { edges { node { " + MESSAGE_FIELDS + " } } } } }";

  // One entry per subscription: its document, its root field and how an event changes the page.
  var FEEDS = {
    deliveryUpdates: {
      query:
        "subscription DemoDeliveries($sid: String!, $after: String) { deliveryUpdates(conversationSid: $sid, " +
        "after: $after) { cursor previousStatus receipt { sid status errorCode participantSid " +
        "participant { identity address channel } } message { " + MESSAGE_FIELDS + " } } }",
      apply: function (event) {
        if (event.message) upsertMessage(event.message);
        var who = event.receipt.participant || {};
        logEvent(event.cursor, "delivery", (who.address || who.identity || event.receipt.participantSid) + " " +
          (event.previousStatus ? event.previousStatus + " → " : "") + event.receipt.status +
          (event.receipt.errorCode ? " (" + event.receipt.errorCode + ")" : ""));
      },
    },
    readHorizonUpdates: {
      query:
        "subscription DemoReadHorizons($sid: String!, $after: String) { readHorizonUpdates(conversationSid: $sid, " +
        "after: $after) { cursor participantSid identity previousIndex lastReadMessageIndex " +
        "participant { " + PARTICIPANT_FIELDS + " } } }",
      apply: function (event) {
        var known = state.participants.get(event.participantSid);
        if (event.participant) state.participants.set(event.participantSid, event.participant);
        else if (known) known.lastReadMessageIndex = event.lastReadMessageIndex;
        logEvent(event.cursor, "read", (event.identity || event.participantSid) + " read up to #" +
          event.lastReadMessageIndex);
        scheduleRefresh(); // chat recipients' ticks and unread counts follow the horizon: ask the gateway again
      },
    },
    messageEvents: {
      query:
        "subscription DemoMessages($sid: String!, $after: String) { messageEvents(conversationSid: $sid, " +
        "after: $after) { cursor action messageSid message { " + MESSAGE_FIELDS + " } } }",
      apply: function (event) {
        if (event.action === "REMOVED") state.messages.delete(event.messageSid);
        else if (event.message) upsertMessage(event.message);
        logEvent(event.cursor, "message", event.action.toLowerCase() + " " +
          (event.message ? "#" + event.message.index : event.messageSid));
        if (event.action === "ADDED") scheduleRefresh(); // the roll-up's unread counts
      },
    },
  };

  var state = {
    token: config.demoMode ? "" : window.sessionStorage.getItem(TOKEN_KEY) || "",
    conversationSid: null,
    conversation: null,
    messages: new Map(), // sid -> message, shown by index
    participants: new Map(), // sid -> participant
    rollup: null,
    cursors: {}, // feed -> last cursor received
    generation: 0, // bumped on every conversation switch or new token: older loops and callbacks stop
    disposers: [],
    client: null,
    reconnects: 0,
    refreshTimer: null,
    refreshing: null, // events applied while a refresh is in flight, replayed over its snapshot
  };

  // ---- small DOM helpers -------------------------------------------------------------------------------------

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) return;
      if (key === "text") node.textContent = String(value);
      else if (key === "className") node.className = value;
      else if (key.indexOf("on") === 0) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, String(value));
    });
    (children || []).forEach(function (child) {
      if (child) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function $(id) {
    return document.getElementById(id);
  }

  function notice(text, kind) {
    var box = $("notice");
    box.hidden = !text;
    box.textContent = text || "";
    box.dataset.kind = kind || "info";
  }

  function setConnection(stateName, text) {
    var badge = $("connection");
    badge.dataset.state = stateName;
    badge.dataset.reconnects = String(state.reconnects);
    badge.textContent = text;
  }

  function time(value) {
    if (!value) return "";
    var date = new Date(value);
    return isNaN(date) ? "" : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  function sleep(ms) {
    return new Promise(function (resolve) {
      window.setTimeout(resolve, ms);
    });
  }

  // ---- GraphQL over HTTP and WebSocket -----------------------------------------------------------------------

  function AuthError(message) {
    this.name = "AuthError";
    this.message = message;
  }
  AuthError.prototype = Object.create(Error.prototype);

  async function request(query, variables) {
    var headers = { "Content-Type": "application/json", Accept: "application/graphql-response+json, application/json" };
    if (state.token) headers.Authorization = "Bearer " + state.token;
    var response = await fetch(httpUrl, {
      method: "POST",
      headers: headers,
      body: JSON.stringify({ query: query, variables: variables || {} }),
    });
    var body = await response.json().catch(function () {
      return null;
    });
    if (response.status === 401) throw new AuthError(errorText(body) || "the gateway wants a bearer token");
    if (!body) throw new Error("HTTP " + response.status + " from the gateway");
    if (body.errors && body.errors.length && !body.data) throw new Error(errorText(body));
    return body;
  }

  function errorText(body) {
    if (!body || !body.errors) return "";
    return body.errors
      .map(function (error) {
        var code = error.extensions && error.extensions.code;
        return (code ? code + ": " : "") + error.message;
      })
      .join("; ");
  }

  function newClient() {
    var pongTimer = null;
    return graphqlWs.createClient({
      url: wsUrl,
      lazy: true,
      lazyCloseTimeout: 1000,
      retryAttempts: 0, // the feeds resubscribe themselves, each from its own last cursor
      keepAlive: 10000, // a ping every 10 s; no pong within 5 s closes the socket (a silently dead connection)
      connectionParams: function () {
        return state.token ? { Authorization: "Bearer " + state.token } : {};
      },
      on: {
        connected: function () {
          setConnection("live", state.reconnects ? "live · reconnected" : "live");
        },
        ping: function (received) {
          if (received) return;
          pongTimer = window.setTimeout(function () {
            if (state.client) state.client.terminate();
          }, 5000);
        },
        pong: function (received) {
          if (received && pongTimer) window.clearTimeout(pongTimer);
        },
        closed: function (event) {
          if (pongTimer) window.clearTimeout(pongTimer);
          if (event && event.code === 4401) {
            setConnection("unauthorized", "token refused");
            askForToken("The gateway refused the token for live updates.");
          }
        },
      },
    });
  }

  // Follows one subscription for the current generation; after a failure it waits (0.5 s doubling to 8 s) and
  // subscribes again with the last cursor it saw.
  async function follow(name, generation) {
    var feed = FEEDS[name];
    var delay = 500;
    var first = true;
    while (generation === state.generation) {
      var after = state.cursors[name] || null;
      if (!first) {
        state.reconnects += name === "deliveryUpdates" ? 1 : 0;
        var badge = $("connection");
        badge.dataset[name + "ResumedAfter"] = after || "";
        if (name === "deliveryUpdates") badge.dataset.resumedAfter = after || "";
        setConnection("connecting", after ? "resuming after cursor " + after + "…" : "reconnecting…");
        if (!after) scheduleRefresh(); // nothing to resume from: take a fresh snapshot instead
      }
      first = false;
      var outcome = await new Promise(function (resolve) {
        var dispose = state.client.subscribe(
          { query: feed.query, variables: { sid: state.conversationSid, after: after } },
          {
            next: function (result) {
              if (generation !== state.generation) return;
              if (result.errors && result.errors.length) {
                var codes = result.errors.map(function (e) {
                  return e.extensions && e.extensions.code;
                });
                if (codes.indexOf("CURSOR_EXPIRED") >= 0) {
                  state.cursors[name] = null; // too old to replay: start live and take a fresh snapshot
                  scheduleRefresh();
                }
                notice(name + ": " + errorText(result), "error");
                return;
              }
              var event = result.data[name];
              state.cursors[name] = event.cursor;
              delay = 500;
              feed.apply(event);
              if (state.refreshing) state.refreshing.push({ feed: feed, event: event });
              render();
            },
            error: function (error) {
              resolve({ error: error });
            },
            complete: function () {
              resolve({});
            },
          },
        );
        state.disposers.push(dispose);
      });
      if (generation !== state.generation) return;
      if (outcome.error && outcome.error.code === 4401) return; // wait for a new token
      setConnection("reconnecting", "connection lost · retrying");
      await sleep(delay);
      delay = Math.min(delay * 2, 8000);
    }
  }

  // ---- state changes -------------------------------------------------------------------------------------------

  function upsertMessage(message) {
    state.messages.set(message.sid, message);
  }

  function logEvent(cursor, kind, text) {
    var list = $("events");
    list.insertBefore(
      el("li", { className: "event event-" + kind, "data-cursor": cursor }, [
        el("span", { className: "event-kind", text: kind }),
        el("span", { text: " " + text }),
        el("span", { className: "muted", text: " · cursor " + cursor }),
      ]),
      list.firstChild,
    );
    while (list.children.length > 15) list.removeChild(list.lastChild);
  }

  function scheduleRefresh() {
    if (state.refreshTimer) return;
    var generation = state.generation;
    state.refreshTimer = window.setTimeout(function () {
      state.refreshTimer = null;
      if (generation === state.generation) loadSnapshot(generation).catch(showError);
    }, 600);
  }

  // The chat screen query; events that arrive while it runs are applied again over its answer.
  async function loadSnapshot(generation) {
    var replay = [];
    state.refreshing = replay;
    try {
      var body = await request(CHAT_QUERY, { sid: state.conversationSid });
      if (generation !== state.generation) return;
      var conversation = body.data && body.data.conversation;
      if (!conversation) throw new Error(errorText(body) || "conversation not found");
      state.conversation = conversation;
      state.participants = new Map(
        (conversation.participants || []).map(function (p) {
          return [p.sid, p];
        }),
      );
      state.rollup = conversation.rollup;
      state.messages = new Map(
        ((conversation.messages && conversation.messages.edges) || []).map(function (edge) {
          return [edge.node.sid, edge.node];
        }),
      );
      replay.forEach(function (item) {
        if (item.feed === FEEDS.readHorizonUpdates) return; // the snapshot already has every horizon it saw
        if (item.event.message) upsertMessage(item.event.message);
      });
      render();
    } finally {
      if (state.refreshing === replay) state.refreshing = null;
    }
  }

  async function openConversation(sid) {
    state.generation += 1;
    var generation = state.generation;
    state.disposers.forEach(function (dispose) {
      dispose();
    });
    state.disposers = [];
    state.cursors = {};
    state.conversationSid = sid;
    state.messages = new Map();
    state.participants = new Map();
    state.rollup = null;
    $("events").textContent = "";
    if (window.location.hash !== "#" + sid) window.history.replaceState(null, "", "#" + sid);
    markSelected();
    render();
    $("chat-header").textContent = "Loading…";
    // Subscribe first, then take the snapshot: an event that lands in between is replayed over the snapshot.
    Object.keys(FEEDS).forEach(function (name) {
      follow(name, generation);
    });
    await loadSnapshot(generation);
  }

  // ---- rendering ----------------------------------------------------------------------------------------------

  var TICKS = {
    PENDING: { glyph: "◷", label: "pending" },
    SENT: { glyph: "✓", label: "sent" },
    DELIVERED: { glyph: "✓✓", label: "delivered" },
    READ: { glyph: "✓✓", label: "read" },
    FAILED: { glyph: "!", label: "failed" },
  };

  function participantName(participant) {
    if (!participant) return "?";
    return participant.identity || participant.address || participant.sid;
  }

  var CHANNELS = { CHAT: "Chat", SMS: "SMS", WHATSAPP: "WhatsApp", OTHER: "other" };

  function channelLabel(channel) {
    return CHANNELS[channel] || channel || "";
  }

  function renderMessage(message) {
    var ticks = message.ticks || "PENDING";
    var tick = TICKS[ticks] || { glyph: "?", label: ticks.toLowerCase() };
    var fromChat = message.participant ? message.participant.channel === "CHAT" : message.author === "system";
    var recipients = (message.recipients || []).map(function (recipient) {
      var error = recipient.error;
      return el("li", {
        className: "recipient status-" + recipient.status,
        "data-participant": recipient.participant.sid,
        "data-status": recipient.status,
      }, [
        el("span", { className: "who", text: participantName(recipient.participant) }),
        el("span", { className: "channel", text: channelLabel(recipient.channel) }),
        el("span", { className: "chip", text: recipient.status.toLowerCase() }),
        recipient.updatedAt ? el("span", { className: "muted", text: time(recipient.updatedAt) }) : null,
        error
          ? el("div", { className: "error", "data-error-code": error.code }, [
              el("strong", { text: error.code + " " + error.name }),
              el("span", { text: " — " + error.description }),
              el("span", { className: "muted", text: error.retryable ? " (a resend may succeed)" : " (do not resend as is)" }),
            ])
          : recipient.errorCode
            ? el("div", { className: "error", text: "error " + recipient.errorCode })
            : null,
      ]);
    });
    return el("li", {
      className: "message " + (fromChat ? "outgoing" : "incoming"),
      "data-sid": message.sid,
      "data-index": message.index,
      "data-ticks": ticks,
    }, [
      el("div", { className: "meta" }, [
        el("span", { className: "author", text: message.author || "system" }),
        el("span", { className: "muted", text: " #" + message.index + " · " + time(message.dateCreated) }),
      ]),
      el("div", { className: "body", text: message.body || "" }),
      el("div", { className: "ticks ticks-" + ticks, title: ticks, "aria-label": tick.label }, [
        el("span", { className: "glyph", text: tick.glyph }),
        el("span", { className: "label", text: tick.label }),
      ]),
      recipients.length ? el("ul", { className: "recipients" }, recipients) : null,
    ]);
  }

  function render() {
    var conversation = state.conversation;
    var header = $("chat-header");
    if (conversation && conversation.sid === state.conversationSid) {
      header.textContent = "";
      header.appendChild(el("h1", { text: conversation.friendlyName || conversation.uniqueName || conversation.sid }));
      header.appendChild(el("span", { className: "muted", text: conversation.sid }));
    }
    var list = $("messages");
    var nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    var ordered = Array.from(state.messages.values()).sort(function (a, b) {
      return a.index - b.index;
    });
    list.replaceChildren.apply(list, ordered.map(renderMessage));
    if (nearBottom) list.scrollTop = list.scrollHeight;

    var unread = new Map();
    ((state.rollup && state.rollup.unread) || []).forEach(function (item) {
      // count is null without a read horizon (unknown); atLeast: more unread messages before the window
      if (item.count !== null) unread.set(item.participant.sid, item.count + (item.atLeast ? "+" : ""));
    });
    var people = Array.from(state.participants.values()).map(function (p) {
      var horizon =
        p.channel === "CHAT"
          ? p.lastReadMessageIndex === null || p.lastReadMessageIndex === undefined
            ? "has read nothing yet"
            : "read up to #" + p.lastReadMessageIndex + (p.lastReadAt ? " at " + time(p.lastReadAt) : "")
          : "receipts from " + channelLabel(p.channel);
      return el("li", { "data-participant": p.sid, "data-horizon": p.lastReadMessageIndex }, [
        el("strong", { text: participantName(p) }),
        el("span", { className: "channel", text: channelLabel(p.channel) }),
        el("div", { className: "muted", text: horizon }),
        unread.has(p.sid) ? el("div", { className: "unread", text: unread.get(p.sid) + " unread" }) : null,
      ]);
    });
    $("participants").replaceChildren.apply($("participants"), people);

    var rollup = $("rollup");
    rollup.textContent = "";
    if (state.rollup) {
      var t = state.rollup.ticks;
      rollup.appendChild(el("div", { className: "counts" }, [
        count("pending", t.pending), count("sent", t.sent), count("delivered", t.delivered),
        count("read", t.read), count("failed", t.failed),
      ]));
    }
  }

  function count(label, value) {
    return el("span", { className: "count ticks-" + label.toUpperCase() }, [
      el("strong", { text: String(value) }), " " + label,
    ]);
  }

  function markSelected() {
    Array.from($("conversation-list").children).forEach(function (item) {
      item.classList.toggle("selected", item.dataset.sid === state.conversationSid);
    });
  }

  // ---- start-up and credentials -------------------------------------------------------------------------------

  function showError(error) {
    if (error instanceof AuthError) {
      askForToken("The gateway needs a valid bearer token: " + error.message);
      return;
    }
    notice(String(error.message || error), "error");
  }

  function askForToken(message) {
    $("token-form").hidden = false;
    notice(message, "error");
    $("token").focus();
  }

  async function start() {
    notice("");
    if (state.client) state.client.dispose();
    state.client = newClient();
    var body = await request(CONVERSATIONS_QUERY);
    var edges = (body.data && body.data.conversations && body.data.conversations.edges) || [];
    var list = $("conversation-list");
    list.replaceChildren.apply(list, edges.map(function (edge) {
      var c = edge.node;
      return el("li", { "data-sid": c.sid }, [
        el("button", { type: "button", onclick: function () { openConversation(c.sid).catch(showError); } }, [
          el("strong", { text: c.friendlyName || c.uniqueName || c.sid }),
          el("span", { className: "muted", text: c.uniqueName || c.sid }),
        ]),
      ]);
    }));
    if (!edges.length) {
      notice(body.errors ? errorText(body) : "No conversation visible with these credentials.", "info");
      return;
    }
    var wanted = window.location.hash.slice(1);
    var known = edges.some(function (edge) {
      return edge.node.sid === wanted;
    });
    await openConversation(known || /^CH[0-9a-f]{32}$/.test(wanted) ? wanted : edges[0].node.sid);
  }

  $("token-form").addEventListener("submit", function (event) {
    event.preventDefault();
    state.token = $("token").value.trim().replace(/^Bearer\s+/i, "");
    window.sessionStorage.setItem(TOKEN_KEY, state.token);
    $("token").value = "";
    state.generation += 1; // stop every loop that runs with the old token
    start().catch(showError);
  });

  window.addEventListener("hashchange", function () {
    var sid = window.location.hash.slice(1);
    if (sid && sid !== state.conversationSid) openConversation(sid).catch(showError);
  });

  if (!config.demoMode) $("token-form").hidden = false;
  if (!config.demoMode && !state.token) {
    askForToken("Paste a bearer token (an API key, or a Twilio Access Token for one user) to connect.");
  } else {
    start().catch(showError);
  }
})();

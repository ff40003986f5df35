// delivery-gateway from Node.js with graphql-ws: the chat screen over HTTP, then delivery updates over WebSocket
// that survive disconnects: each event's cursor is stored after it is handled, and after a drop the subscription
// resumes with `after` = that cursor, so nothing is missed and nothing handled comes twice.
//
//   npm ci
//   node delivery-client.mjs --url http://127.0.0.1:8000 --conversation CH… [--token …] [--cursor-file f]
//
// The token is an API key or the Twilio Access Token your backend minted for the signed-in user (the same one the
// Conversations SDK uses); it goes in the Authorization header over HTTP and in `connection_init` over WebSocket.
// Prints one JSON object per line: {"type":"chat"|"subscribed"|"event"|"resuming"|"error", ...}. Never prints the
// token. The operations are the .graphql files of docs/operations/.

import { readFile, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { createClient } from "graphql-ws";
import WebSocket from "ws";

const OPERATIONS = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "operations");

const { values: args } = parseArgs({
  options: {
    url: { type: "string", default: "http://127.0.0.1:8000" },
    conversation: { type: "string" },
    token: { type: "string", default: process.env.DELIVERY_GATEWAY_TOKEN ?? "" },
    "cursor-file": { type: "string", default: "delivery-cursor.txt" },
    "max-events": { type: "string", default: "0" }, // stop after this many events (0: never)
  },
});
if (!args.conversation) {
  console.error("usage: node delivery-client.mjs --url URL --conversation CH… [--token TOKEN]");
  process.exit(2);
}

const httpUrl = new URL("/graphql", args.url).toString();
const wsUrl = httpUrl.replace(/^http/, "ws");
const auth = args.token ? { Authorization: `Bearer ${args.token}` } : {};
const maxEvents = Number(args["max-events"]);

function emit(type, payload) {
  process.stdout.write(JSON.stringify({ type, ...payload }) + "\n");
}

async function operation(name) {
  return readFile(join(OPERATIONS, `${name}.graphql`), "utf8");
}

// Queries and mutations: plain fetch. A 401 comes with {"errors": [{"extensions": {"code": "UNAUTHENTICATED"}}]},
// or "TOKEN_EXPIRED" when the Access Token has expired (fetch a fresh one from your backend and retry), or
// "TOKEN_LIFETIME_EXCEEDED" when it was minted to live longer than Twilio's 24 h maximum (mint it with a shorter ttl).
async function request(query, variables) {
  const response = await fetch(httpUrl, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...auth },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors?.length) {
    const codes = body.errors.map((e) => e.extensions?.code ?? "ERROR").join(", ");
    throw new Error(`${codes}: ${body.errors[0].message}`);
  }
  return body.data;
}

const cursorFile = args["cursor-file"];

async function loadCursor() {
  try {
    return (await readFile(cursorFile, "utf8")).trim() || null;
  } catch {
    return null;
  }
}

async function saveCursor(cursor) {
  await writeFile(`${cursorFile}.partial`, cursor);
  await rename(`${cursorFile}.partial`, cursorFile); // atomic: a crash never leaves half a cursor
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// One client for the process. retryAttempts 0: on a drop the subscription fails and the loop below subscribes
// again itself, with the stored cursor (graphql-ws's own retry would resend the first `after`).
const client = createClient({
  url: wsUrl,
  webSocketImpl: WebSocket,
  connectionParams: () => auth,
  lazy: true,
  retryAttempts: 0,
  keepAlive: 10_000,
  on: {
    closed: (event) => {
      if (event?.code === 4401) emit("error", { message: `the gateway refused the token (4401 ${event.reason})` });
    },
  },
});

async function followDeliveryUpdates(sid) {
  const query = await operation("delivery-updates");
  let handled = 0;
  let delay = 500;
  let first = true;
  for (;;) {
    const after = await loadCursor();
    if (!first) emit("resuming", { after });
    first = false;
    try {
      const subscription = client.iterate({ query, variables: { sid, after } });
      emit("subscribed", { after });
      for await (const result of subscription) {
        if (result.errors?.length) throw Object.assign(new Error(result.errors[0].message), { fatal: true });
        const update = result.data.deliveryUpdates;
        emit("event", { update });
        await saveCursor(update.cursor); // after handling: an event is handled at least once
        delay = 500;
        handled += 1;
        if (maxEvents && handled >= maxEvents) return;
      }
    } catch (error) {
      if (error?.fatal || error?.code === 4401) throw error;
      // a dropped or refused connection (a CloseEvent or a socket error): try again below
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 30_000);
  }
}

try {
  const chat = await request(await operation("chat-screen"), { sid: args.conversation });
  emit("chat", { conversation: chat.conversation });
  await followDeliveryUpdates(args.conversation);
  await client.dispose();
} catch (error) {
  emit("error", { message: String(error?.message ?? error) });
  await client.dispose();
  process.exitCode = 1;
}

// The two WebSocket streams (docs/realtime.md): /ws/prices (subscribe to tickers, quotes
// in place) and /ws/alerts (the user's alerts, resumed from the last id seen). Browsers
// cannot set headers on a WebSocket, so the access token goes in the query; each
// reconnect takes the current (silently refreshed) token.

import { accessToken } from "./api.js";

function socketUrl(path, query = {}) {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const params = new URLSearchParams({ ...query, access_token: accessToken() || "" });
  return `${scheme}//${window.location.host}/api/v1${path}?${params}`;
}

class Stream {
  constructor(path) {
    this.path = path;
    this.socket = null;
    this.handlers = new Set();
    this.stateHandlers = new Set();
    this.closed = true;
    this.retry = 1000;
    this.state = "closed";
  }

  query() {
    return {};
  }

  open() {
    if (!this.closed) return;
    this.closed = false;
    this.connect();
  }

  connect() {
    if (this.closed || !accessToken()) return;
    this.setState("connecting");
    const socket = new WebSocket(socketUrl(this.path, this.query()));
    this.socket = socket;
    socket.onopen = () => {
      this.retry = 1000;
      this.setState("open");
      this.opened();
    };
    socket.onmessage = (event) => {
      for (const message of JSON.parse(event.data)) {
        for (const handler of this.handlers) handler(message);
      }
    };
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.setState(this.closed ? "closed" : "reconnecting");
      if (!this.closed) {
        setTimeout(() => this.connect(), this.retry);
        this.retry = Math.min(this.retry * 2, 15000);
      }
    };
  }

  opened() {}

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(message));
    }
  }

  on(handler) {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  onState(handler) {
    this.stateHandlers.add(handler);
    handler(this.state);
    return () => this.stateHandlers.delete(handler);
  }

  setState(state) {
    this.state = state;
    for (const handler of this.stateHandlers) handler(state);
  }

  close() {
    this.closed = true;
    if (this.socket) this.socket.close(1000);
    this.socket = null;
    this.setState("closed");
  }
}

// Quotes: pages ask for tickers with `watch(tickers)` and drop them with the function it
// returns; the stream subscribes to the union and re-subscribes after a reconnect.
class PriceStream extends Stream {
  constructor() {
    super("/ws/prices");
    this.counts = new Map();
  }

  opened() {
    const tickers = [...this.counts.keys()];
    if (tickers.length) this.send({ action: "subscribe", tickers });
  }

  watch(tickers) {
    const added = [];
    for (const ticker of tickers) {
      const count = this.counts.get(ticker) || 0;
      if (!count) added.push(ticker);
      this.counts.set(ticker, count + 1);
    }
    this.open();
    if (added.length) this.send({ action: "subscribe", tickers: added });
    return () => {
      const removed = [];
      for (const ticker of tickers) {
        const count = (this.counts.get(ticker) || 1) - 1;
        if (count <= 0) {
          this.counts.delete(ticker);
          removed.push(ticker);
        } else this.counts.set(ticker, count);
      }
      if (removed.length) this.send({ action: "unsubscribe", tickers: removed });
    };
  }
}

class AlertStream extends Stream {
  constructor() {
    super("/ws/alerts");
    this.lastId = null;
    this.on((message) => {
      if (message.type === "alert" && (this.lastId === null || message.id > this.lastId)) {
        this.lastId = message.id;
      }
    });
  }

  query() {
    return this.lastId === null ? {} : { last_alert_id: this.lastId };
  }
}

export const prices = new PriceStream();
export const alerts = new AlertStream();

export function closeStreams() {
  prices.counts.clear();
  prices.close();
  alerts.lastId = null;
  alerts.close();
}

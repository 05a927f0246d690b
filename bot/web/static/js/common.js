// Shared by every page: the header, JSON reads, live updates, and building the DOM from
// data. Ledger values only ever reach the page as text (textContent), never as HTML.

const PAGES = [["/", "Overview"], ["/market", "Market"], ["/equity", "Equity"], ["/trades", "Trades"],
               ["/models", "Models"]];

/** An element with attributes and children; strings become text nodes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace the children of ``node``. */
export function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  return node;
}

/** The page header: brand, navigation, the live indicator; returns the indicator. */
export function header(mode) {
  const live = el("span", { class: "live off", id: "live", text: "connecting" });
  const links = PAGES.map(([path, label]) =>
    el("a", { href: path, class: location.pathname === path ? "current" : null, text: label }));
  const top = document.getElementById("top");
  fill(top, el("span", { class: "brand", text: "Shadow" }), el("nav", { "aria-label": "pages" }, links), live);
  if (mode) top.append(el("span", { class: "muted", text: mode }));
  return live;
}

export class ApiError extends Error {}

/** GET ``path`` with ``params`` (empty values left out) and parse the JSON. */
export async function api(path, params = {}) {
  const response = await fetch(apiUrl(path, params), { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(body.error || `${path}: HTTP ${response.status}`);
  return body;
}

export function apiUrl(path, params = {}) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") query.set(name, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/** Show ``error`` (or clear it) in the page's error box. */
export function showError(error) {
  const box = document.getElementById("error");
  if (box) box.textContent = error ? String(error.message || error) : "";
}

/**
 * Live updates: ``onChange(change)`` for every commit the server reports (server-sent
 * events), at most once per ``minGapMs``; the indicator says whether the stream is up.
 */
export function live(indicator, onChange, minGapMs = 250) {
  let pending = null;
  let timer = null;
  let last = 0;
  const flush = () => {
    timer = null;
    last = Date.now();
    const change = pending;
    pending = null;
    onChange(change);
  };
  const source = new EventSource("/api/events");
  // Close the stream as the page goes: a browser keeps few connections per server, and a
  // stream left to linger would hold one of them.
  addEventListener("pagehide", () => source.close());
  source.addEventListener("open", () => {
    indicator.className = "live on";
    indicator.textContent = "live";
  });
  source.addEventListener("error", () => {
    indicator.className = "live off";
    indicator.textContent = "reconnecting";
  });
  source.addEventListener("change", (event) => {
    const change = JSON.parse(event.data);
    pending = pending ? merge(pending, change) : change;
    if (timer === null) timer = setTimeout(flush, Math.max(0, minGapMs - (Date.now() - last)));
  });
  return source;
}

function merge(a, b) {
  const decided = { ...a.decided };
  for (const [symbol, time] of Object.entries(b.decided)) decided[symbol] = Math.max(decided[symbol] || 0, time);
  return { decided, events: a.events.concat(b.events) };
}

const numberFormats = new Map();

/** ``value`` with ``digits`` decimals and thousands separators ("-" for none). */
export function num(value, digits = 2) {
  if (value === null || value === undefined || Number.isNaN(value)) return "-";
  if (!numberFormats.has(digits)) {
    numberFormats.set(digits, new Intl.NumberFormat("en-US", { minimumFractionDigits: digits,
                                                               maximumFractionDigits: digits }));
  }
  return numberFormats.get(digits).format(value);
}

/** A price with as many decimals as it needs (4 significant after the point). */
export function price(value) {
  if (value === null || value === undefined) return "-";
  const magnitude = Math.abs(value);
  const digits = magnitude >= 1000 ? 2 : magnitude >= 1 ? 4 : 8;
  return num(value, digits);
}

export function pct(fraction, digits = 2) {
  return fraction === null || fraction === undefined ? "-" : `${num(100 * fraction, digits)}%`;
}

/** Signed, coloured by sign. */
export function signed(value, digits = 2) {
  const text = value === null || value === undefined ? "-" : `${value > 0 ? "+" : ""}${num(value, digits)}`;
  return el("span", { class: value > 0 ? "pos" : value < 0 ? "neg" : null, text });
}

/** Epoch ms as "YYYY-MM-DD HH:MM" UTC. */
export function utc(ms) {
  if (ms === null || ms === undefined) return "-";
  return new Date(ms).toISOString().slice(0, 16).replace("T", " ");
}

/** Seconds as "42 s", "3 min", "5 h", "2 d". */
export function age(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  const s = Math.max(0, seconds);
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

/** A resolution in ms as "1m", "4h", "1d", "1w". */
export function levelName(ms) {
  const minutes = ms / 60000;
  if (minutes % 10080 === 0) return `${minutes / 10080}w`;
  if (minutes % 1440 === 0) return `${minutes / 1440}d`;
  if (minutes % 60 === 0) return `${minutes / 60}h`;
  return `${minutes}m`;
}

/** A table: ``columns`` are [label, className]; ``rows`` arrays of cell contents. */
export function table(columns, rows) {
  const head = el("tr", {}, columns.map(([label, cls]) => el("th", { class: cls, scope: "col", text: label })));
  const body = rows.map((cells) => el("tr", {}, cells.map((cell, i) =>
    el("td", { class: columns[i][1] }, cell))));
  return el("div", { class: "table-wrap" }, el("table", {}, el("thead", {}, head), el("tbody", {}, body)));
}

/** The page's query string as an object, and writing it back without a reload. */
export function pageParams() {
  return Object.fromEntries(new URLSearchParams(location.search));
}

export function setPageParams(values) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(values)) {
    if (value !== null && value !== undefined && value !== "") query.set(name, String(value));
  }
  const text = query.toString();
  history.replaceState(null, "", text ? `?${text}` : location.pathname);
}

/** Chart colours and options shared by the market and equity charts. */
export const CHART_THEME = {
  // The TradingView logo injects an inline <style>, which the CSP forbids; the pages
  // credit TradingView with a link in the chart legend instead (as its licence notice asks).
  layout: { background: { color: "#0f1419" }, textColor: "#d7dde4", attributionLogo: false },
  grid: { vertLines: { color: "#1c232b" }, horzLines: { color: "#1c232b" } },
  rightPriceScale: { borderColor: "#27303a" },
  timeScale: { borderColor: "#27303a", timeVisible: true, secondsVisible: false },
  crosshair: { mode: 0 },
  autoSize: true,
};

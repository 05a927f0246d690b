// Models and retraining: one time line, newest first, of model versions, retrain runs
// with their gate verdict and figures, live trials with theirs, promotions, rollbacks, risk events
// and sessions.
import { api, el, fill, header, live, num, pageParams, setPageParams, showError, utc } from "./common.js";

const KINDS = { model: "model registered", promotion: "promotion", rollback: "rollback", retrain: "retrain run",
                trial: "live trial", risk: "risk control", start: "session started", stop: "session stopped" };
const state = { symbol: null, next: null, events: [], hidden: new Set() };

function title(event) {
  switch (event.kind) {
    case "model": return `Model ${event.version} registered (now ${event.status})`;
    case "promotion": return `Promoted ${event.version}`;
    case "rollback": return `Rolled back to ${event.version}`;
    case "retrain": return `Retrain ${event.id}: ${event.status}` + (event.version ? ` (candidate ${event.version})` : "");
    case "trial": return `Live trial of ${event.version}: ${event.status}`;
    case "risk": return `Risk: ${event.status}` + (event.account ? ` (account ${event.account})` : "");
    case "start": return `Session ${event.id} started (Shadow ${event.version})`;
    case "stop": return `Session ${event.id} stopped`;
    default: return event.kind;
  }
}

function detail(event) {
  switch (event.kind) {
    case "model": return event.detail ? `retrained from ${event.detail}` : null;
    case "promotion":
    case "rollback": return event.detail ? `replacing ${event.detail}` : "the first model for this market";
    case "start": return event.detail ? `symbols ${JSON.parse(event.detail).join(", ")}` : null;
    default: return event.detail;
  }
}

/** A figures object (metrics JSON) as small tables: scalars first, then one per nested object. */
function figures(data) {
  if (!data || !Object.keys(data).length) return null;
  const scalars = Object.entries(data).filter(([, v]) => v === null || typeof v !== "object");
  const nested = Object.entries(data).filter(([, v]) => v !== null && typeof v === "object");
  const show = (v) => (typeof v === "number" ? num(v, Math.abs(v) >= 100 ? 1 : 4) : v === null ? "-" : String(v));
  const parts = [];
  if (scalars.length) {
    parts.push(el("table", {}, el("tbody", {}, scalars.map(([k, v]) =>
      el("tr", {}, el("th", { class: "text", text: k }), el("td", { class: "text", text: show(v) }))))));
  }
  for (const [key, value] of nested) {
    const rows = Array.isArray(value) ? [[key, value.map(show).join(", ")]] : Object.entries(value).map(([k, v]) =>
      [k, v !== null && typeof v === "object" ? Object.entries(v).map(([a, b]) => `${a} ${show(b)}`).join(" · ") : show(v)]);
    parts.push(el("table", {}, el("caption", { class: "muted", text: key }), el("tbody", {}, rows.map(([k, v]) =>
      el("tr", {}, el("th", { class: "text", text: k }), el("td", { class: "text", text: v }))))));
  }
  return el("details", { class: "figures" }, el("summary", { text: "figures" }), parts);
}

/** A gate verdict: the metric of candidate, incumbent and flat, per symbol on a retrain's
 * holdout, over all the trial's symbols on a live trial's candles. */
function verdict(event) {
  const f = event.figures;
  if (!["retrain", "trial"].includes(event.kind) || !f || !f.scores) return null;
  const line = (label, s) => el("div", {}, el("span", { class: "muted", text: label }),
    `candidate ${num(s.candidate, 2)} · incumbent ${num(s.incumbent, 2)} · flat ${num(s.flat, 2)}`,
    el("span", { class: "muted", text: ` (margin ${num(f.margin, 2)})` }));
  const lines = event.kind === "trial"
    ? [line(`${f.metric} over ${num(f.candles, 0)} live candles: `, f.scores)]
    : Object.entries(f.scores).map(([symbol, s]) => line(`${symbol} ${f.metric} on the holdout: `, s));
  return el("div", { class: "verdict" }, lines);
}

function item(event) {
  const cls = ["retrain", "trial"].includes(event.kind) ? `${event.kind}-${event.status}` : event.kind;
  return el("li", { class: cls, "data-kind": event.kind },
    el("div", { class: "when" }, el("span", { class: "badge", text: KINDS[event.kind] || event.kind }),
      `${utc(event.time_ms)} UTC`, event.symbol ? " · " : null, event.symbol ? el("span", { text: event.symbol }) : null),
    el("div", { class: "what", text: title(event) }),
    detail(event) ? el("div", { class: "detail", text: detail(event) }) : null,
    verdict(event),
    figures(event.figures));
}

function render() {
  const shown = state.events.filter((e) => !state.hidden.has(e.kind));
  fill(document.getElementById("timeline"), shown.length ? shown.map(item)
    : [el("li", { class: "muted", text: "Nothing recorded yet: no model, retrain, risk event or session." })]);
  document.getElementById("older").disabled = !state.next;
}

async function loadFirst() {
  const page = await api("/api/timeline", { symbol: state.symbol, limit: 100 });
  state.events = page.events;
  state.next = page.next;
  showError(null);
  render();
}

async function loadOlder() {
  if (!state.next) return;
  try {
    const page = await api("/api/timeline", { symbol: state.symbol, limit: 100, before: state.next });
    state.events = state.events.concat(page.events);
    state.next = page.next;
    render();
  } catch (error) {
    showError(error);
  }
}

async function refresh() {
  setPageParams({ symbol: state.symbol });
  try {
    await loadFirst();
  } catch (error) {
    showError(error);
  }
}

async function start() {
  const indicator = header();
  state.symbol = pageParams().symbol || null;
  fill(document.getElementById("kinds"), Object.entries(KINDS).map(([kind, label]) => el("label", { class: "check" },
    el("input", { type: "checkbox", checked: true, onchange: (e) => {
      if (e.target.checked) state.hidden.delete(kind); else state.hidden.add(kind);
      render();
    } }), ` ${label}`)));
  try {
    const markets = await api("/api/markets");
    const select = document.getElementById("symbol");
    const symbols = [...new Set(markets.markets.map((m) => m.symbol))];  // once, however many accounts trade it
    fill(select, el("option", { value: "", text: "every symbol" }),
      symbols.map((symbol) => el("option", { value: symbol, text: symbol })));
    select.value = state.symbol || "";
    select.addEventListener("change", () => { state.symbol = select.value || null; refresh(); });
  } catch (error) {
    showError(error);
  }
  document.getElementById("older").addEventListener("click", loadOlder);
  await refresh();
  live(indicator, (change) => { if (change.events.length) refresh(); }, 1000);
}

start();

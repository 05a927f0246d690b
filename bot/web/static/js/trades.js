// Trades: the ledger's closed trades, filtered, sorted and paged by the server; the CSV
// link downloads every trade the same filters select.
import { api, apiUrl, el, fill, header, live, num, pageParams, price, setPageParams, showError, signed }
  from "./common.js";

const DAY_MS = 86400000;
// [column, label, class, render(row value)]
const SHOWN = [
  ["trade_id", "#", "", (v) => String(v)],
  ["account", "Account", "text name", (v) => v],
  ["symbol", "Symbol", "text name", (v) => v],
  ["side", "Side", "text", (v) => v],
  ["entry_time_ms", "Entry (UTC)", "text", (v) => utcText(v)],
  ["exit_time_ms", "Exit (UTC)", "text", (v) => utcText(v)],
  ["holding_minutes", "Held min", "", (v) => num(v, 0)],
  ["qty", "Qty", "", (v) => num(v, 6)],
  ["entry_price", "Entry", "", price],
  ["exit_price", "Exit", "", price],
  ["net_pnl", "Net PnL", "", (v) => signed(v, 4)],
  ["return_pct", "Return %", "", (v) => signed(v, 3)],
  ["fees", "Fees", "", (v) => num(v, 4)],
  ["funding", "Funding", "", (v) => num(v, 4)],
  ["model_version", "Model", "text name", null],
];
const FILTERS = ["account", "symbol", "model", "side", "from", "to", "limit"];

const state = { sort: "exit_time_ms", order: "desc", offset: 0, total: 0, limit: 50 };

function utcText(ms) {
  return new Date(ms).toISOString().slice(0, 16).replace("T", " ");
}

function filterValues() {
  const form = document.getElementById("filters");
  const values = Object.fromEntries(FILTERS.map((name) => [name, form.elements[name].value]));
  return values;
}

/** The API's parameters for the form: dates are whole UTC days, ``to`` inclusive. */
function query() {
  const f = filterValues();
  return {
    account: f.account, symbol: f.symbol, model: f.model, side: f.side,
    from: f.from ? Date.parse(`${f.from}T00:00:00Z`) : null,
    to: f.to ? Date.parse(`${f.to}T00:00:00Z`) + DAY_MS : null,
    sort: state.sort, order: state.order,
  };
}

async function load() {
  const q = query();
  state.limit = Number(filterValues().limit);
  const page = await api("/api/trades", { ...q, offset: state.offset, limit: state.limit });
  showError(null);
  state.total = page.total;
  document.getElementById("csv").href = apiUrl("/api/trades.csv", q);
  setPageParams({ ...filterValues(), sort: state.sort, order: state.order, offset: state.offset || null });
  renderTable(page);
}

function renderTable(page) {
  const index = Object.fromEntries(page.columns.map((c, i) => [c, i]));
  const head = el("tr", {}, SHOWN.map(([column, label, cls]) => {
    const sorted = column === state.sort ? (state.order === "asc" ? "ascending" : "descending") : "none";
    return el("th", { class: cls, scope: "col", "aria-sort": sorted },
      el("button", { type: "button", text: label, onclick: () => sortBy(column) }));
  }));
  const rows = page.rows.map((row) => el("tr", {}, SHOWN.map(([column, , cls, render]) => {
    const value = row[index[column]];
    const shown = render ? render(value) : value ?? row[index.strategy] ?? "-";
    return el("td", { class: cls }, shown);
  })));
  fill(document.getElementById("table"), el("div", { class: "table-wrap" },
    el("table", { id: "trades" }, el("thead", {}, head), el("tbody", {}, rows))));
  const first = page.total ? page.offset + 1 : 0;
  const last = page.offset + page.rows.length;
  const count = document.getElementById("count");
  fill(count, `${num(first, 0)}–${num(last, 0)} of ${num(page.total, 0)} trades · net PnL `, signed(page.net_pnl, 4));
  count.dataset.total = page.total;
  document.getElementById("prev").disabled = page.offset === 0;
  document.getElementById("next").disabled = last >= page.total;
}

function sortBy(column) {
  state.order = column === state.sort && state.order === "desc" ? "asc" : "desc";
  state.sort = column;
  state.offset = 0;
  refresh();
}

async function refresh() {
  try {
    await load();
  } catch (error) {
    showError(error);
  }
}

async function fillChoices(wanted) {
  const [markets, models] = await Promise.all([api("/api/markets"), api("/api/trade-models")]);
  const options = (values, anyLabel) => [el("option", { value: "", text: anyLabel }),
    ...values.map((v) => el("option", { value: v, text: v }))];
  fill(document.getElementById("account"), options(markets.accounts, "every account"));
  const symbols = [...new Set(markets.markets.map((m) => m.symbol))];  // a symbol once, however many accounts trade it
  fill(document.getElementById("symbol"), options(symbols, "every symbol"));
  fill(document.getElementById("model"), options(models.models, "every model"));
  const form = document.getElementById("filters");
  for (const name of FILTERS) {
    if (wanted[name] !== undefined) form.elements[name].value = wanted[name];
  }
}

async function start() {
  const indicator = header();
  const wanted = pageParams();
  state.sort = wanted.sort || state.sort;
  state.order = wanted.order || state.order;
  state.offset = Number(wanted.offset) || 0;
  try {
    await fillChoices(wanted);
  } catch (error) {
    showError(error);
    return;
  }
  const form = document.getElementById("filters");
  form.addEventListener("change", () => { state.offset = 0; refresh(); });
  form.addEventListener("submit", (event) => event.preventDefault());
  document.getElementById("prev").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - state.limit);
    refresh();
  });
  document.getElementById("next").addEventListener("click", () => {
    state.offset += state.limit;
    refresh();
  });
  await refresh();
  live(indicator, (change) => {
    if (Object.keys(change.decided).length && state.offset === 0) refresh();
  }, 1000);
}

start();

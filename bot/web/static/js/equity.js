// Equity: the account's equity with buy & hold and flat on one axis, drawdown under it.
import { api, el, fill, header, levelName, live, num, pageParams, pct, setPageParams, showError, signed, CHART_THEME }
  from "./common.js";

const LC = window.LightweightCharts;
const RANGES = [["All", null], ["30 d", 30], ["7 d", 7], ["1 d", 1]];
const DAY_MS = 86400000;

const top = LC.createChart(document.getElementById("equity-chart"), CHART_THEME);
const equity = top.addSeries(LC.LineSeries, { color: "#4f9cf9", lineWidth: 2, title: "equity" });
const hold = top.addSeries(LC.LineSeries, { color: "#f0b429", lineWidth: 1, title: "buy & hold" });
const flat = top.addSeries(LC.LineSeries, { color: "#8b96a3", lineWidth: 1, lineStyle: 2, title: "flat",
                                            lastValueVisible: false });
const bottom = LC.createChart(document.getElementById("drawdown-chart"), CHART_THEME);
const drawdown = bottom.addSeries(LC.AreaSeries, { lineColor: "#ef5350", topColor: "rgba(239, 83, 80, 0.05)",
                                                   bottomColor: "rgba(239, 83, 80, 0.45)", lineWidth: 1,
                                                   invertFilledArea: false, title: "drawdown %" });
syncTimeScales(top, bottom);

const state = { account: null, symbol: null, days: null, markets: [] };

function syncTimeScales(a, b) {
  let syncing = false;
  const follow = (from, to) => (range) => {
    if (syncing || !range) return;
    syncing = true;
    to.timeScale().setVisibleLogicalRange(range);
    syncing = false;
  };
  a.timeScale().subscribeVisibleLogicalRangeChange(follow(a, b));
  b.timeScale().subscribeVisibleLogicalRangeChange(follow(b, a));
}

async function load(fit) {
  const markets = state.markets.filter((m) => !state.symbol || m.symbol === state.symbol);
  const last = markets.length ? Math.max(...markets.map((m) => m.last_ms)) : null;
  const start = state.days && last ? last - state.days * DAY_MS : null;
  const curve = await api("/api/equity", { account: state.account, symbol: state.symbol, start, points: 1500 });
  showError(null);
  const points = (values) => curve.times_ms.map((t, i) => ({ time: t / 1000, value: values[i] }));
  equity.setData(points(curve.equity));
  hold.setData(points(curve.buy_and_hold));
  flat.setData(points(curve.flat));
  drawdown.setData(points(curve.drawdown.map((d) => -100 * d)));
  if (fit) {
    top.timeScale().fitContent();
    bottom.timeScale().fitContent();
  }
  renderSummary(curve);
  document.getElementById("resolution").textContent =
    curve.level_ms ? `one point per ${levelName(curve.level_ms)} (${curve.times_ms.length} points)` : "";
}

function renderSummary(curve) {
  const n = curve.times_ms.length;
  const box = document.getElementById("summary");
  if (!n) {
    fill(box, el("p", { class: "muted", text: "No decision in this range." }));
    return;
  }
  const base = curve.flat[n - 1];
  const ret = (v) => (v - base) / base;
  fill(box,
    card("Equity", num(curve.equity[n - 1])),
    card("Return", signed(100 * ret(curve.equity[n - 1]), 2), "%"),
    card("Buy & hold", signed(100 * ret(curve.buy_and_hold[n - 1]), 2), "%"),
    card("Max drawdown", pct(Math.max(...curve.drawdown), 1)),
    card("Symbols", curve.symbols.join(", ")));
}

function card(label, value, suffix = "") {
  return el("div", { class: "card" }, el("div", { class: "label", text: label }),
    el("div", { class: "value" }, value, suffix));
}

function renderRanges() {
  fill(document.getElementById("ranges"), RANGES.map(([label, days]) =>
    el("button", { class: "btn", type: "button", "aria-pressed": state.days === days ? "true" : "false", text: label,
                   onclick: () => { state.days = days; renderRanges(); refresh(); } })));
}

async function refresh(fit = true) {
  setPageParams({ account: state.account, symbol: state.symbol, days: state.days });
  try {
    await load(fit);
  } catch (error) {
    showError(error);
  }
}

async function start() {
  const indicator = header();
  const wanted = pageParams();
  let found;
  try {
    found = await api("/api/markets");
  } catch (error) {
    showError(error);
    return;
  }
  state.markets = found.markets;
  state.account = found.accounts.includes(wanted.account) ? wanted.account : found.accounts[0];
  state.symbol = found.markets.some((m) => m.symbol === wanted.symbol) ? wanted.symbol : null;
  state.days = wanted.days ? Number(wanted.days) : null;
  const accounts = document.getElementById("account");
  fill(accounts, found.accounts.map((a) => el("option", { value: a, text: a })));
  accounts.value = state.account;
  const symbols = document.getElementById("symbol");
  fill(symbols, el("option", { value: "", text: "all symbols (sum)" }),
    found.markets.map((m) => el("option", { value: m.symbol, text: m.symbol })));
  symbols.value = state.symbol || "";
  accounts.addEventListener("change", () => { state.account = accounts.value; refresh(); });
  symbols.addEventListener("change", () => { state.symbol = symbols.value || null; refresh(); });
  renderRanges();
  await refresh();
  live(indicator, () => refresh(false), 1000);
}

start();

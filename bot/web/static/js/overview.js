// Overview: per account and symbol, the account now, the latest session, and health.
import { age, api, el, fill, header, live, num, pct, price, showError, signed, table } from "./common.js";

const REFRESH_MS = 5000; // ages move on even without commits

async function load() {
  const doc = await api("/api/overview");
  showError(null);
  renderHealth(doc.health, doc.mode, doc.ledger);
  fill(document.getElementById("accounts"), doc.accounts.map(renderAccount));
  renderSession(doc.run);
  return doc;
}

function renderHealth(health, mode, ledger) {
  const box = document.getElementById("health");
  box.className = `banner ${health.status}`;
  const source = mode === "daemon" ? "the running daemon" : `the ledger file ${ledger} (no daemon attached)`;
  fill(box,
    el("strong", { text: `Health: ${health.status}` }),
    el("span", { class: "muted", text: ` · judged by ${source}` }),
    health.problems.length ? el("ul", {}, health.problems.map((p) => el("li", { text: p }))) : null);
}

function renderAccount(account) {
  const cards = el("div", { class: "cards" },
    card("Equity", num(account.equity, 2)),
    card("Total PnL", signed(account.total_pnl, 2)),
    card("Unrealised PnL", signed(account.unrealized_pnl, 2)),
    card("Closed trades", num(account.trades, 0)));
  const columns = [["Symbol", "text name"], ["Position", "text"], ["Qty", ""], ["Entry", ""], ["Last price", ""],
                   ["Unrealised", ""], ["Equity", ""], ["Total PnL", ""], ["Win rate", ""], ["Max DD", ""],
                   ["Last candle (UTC)", "text"], ["Age", ""], ["Model", "text name"]];
  const rows = account.symbols.map((s) => [
    s.symbol, s.position, s.position === "flat" ? "-" : num(s.qty, 6), price(s.entry_price), price(s.last_price),
    signed(s.unrealized_pnl), num(s.equity), signed(s.total_pnl), pct(s.win_rate, 1), pct(s.max_drawdown, 1),
    s.last_candle ? s.last_candle.replace("T", " ").replace("Z", "") : "-", age(s.last_candle_age_s),
    s.model_version ? `${s.strategy} ${s.model_version}` : s.strategy || "-",
  ]);
  return el("section", { class: "account" },
    el("h2", {}, "Account ", el("span", { class: "account-name", text: account.account })),
    cards,
    rows.length ? table(columns, rows) : el("p", { class: "muted", text: "No decision recorded yet." }));
}

function card(label, value) {
  return el("div", { class: "card" }, el("div", { class: "label", text: label }), el("div", { class: "value" }, value));
}

function renderSession(run) {
  const box = document.getElementById("session");
  if (!run) {
    fill(box, el("p", { class: "muted", text: "No daemon session recorded." }));
    return;
  }
  const state = run.stopped_at ? `stopped ${run.stopped_at} (${run.stop_reason})` : "running (or ended without a stop record)";
  fill(box, el("h2", { text: "Latest session" }),
    el("p", {}, `Run ${run.run_id}, started ${run.started_at}, Shadow ${run.code_version}: ${state}. Symbols: `,
      el("span", { class: "symbols", text: run.symbols.join(", ") })));
}

async function refresh() {
  try {
    await load();
  } catch (error) {
    showError(error);
  }
}

const indicator = header();
refresh();
live(indicator, refresh, 500);
setInterval(refresh, REFRESH_MS);

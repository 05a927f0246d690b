// Market: candlesticks of one symbol with every trade's entry and exit, positions shaded,
// zoom and pan over the whole ledger. The server sends bars of one resolution for a window;
// panning left loads older windows, zooming far out or in switches resolution, and new
// candles arrive live.
import { api, el, fill, header, levelName, live, num, pageParams, price, setPageParams, showError, CHART_THEME }
  from "./common.js";

const LC = window.LightweightCharts;
const PAGE_BARS = 1000;      // bars per window asked for
const SHOWN_BARS = 240;      // bars in view after a jump
const ZOOM_OUT_AT = 1500;    // more bars in view than this: a coarser resolution
const ZOOM_IN_AT = 30;       // fewer: a finer one
const LONG = "38, 166, 154";
const SHORT = "239, 83, 80";

const chartBox = document.getElementById("chart");
const chart = LC.createChart(chartBox, CHART_THEME);
const shade = chart.addSeries(LC.HistogramSeries, { priceScaleId: "exposure", lastValueVisible: false,
                                                   priceLineVisible: false, base: 0 });
chart.priceScale("exposure").applyOptions({ scaleMargins: { top: 0, bottom: 0 }, visible: false });
const candles = chart.addSeries(LC.CandlestickSeries, {
  upColor: `rgb(${LONG})`, downColor: `rgb(${SHORT})`, borderVisible: false,
  wickUpColor: `rgb(${LONG})`, wickDownColor: `rgb(${SHORT})`,
});
const markers = LC.createSeriesMarkers(candles, []);

const state = { markets: [], market: null, level: null, levels: [], bars: [], marks: [], exposure: [],
                moreBefore: false, busy: false, quietUntil: 0 };

// ---------------------------------------------------------------- data -> chart
const toBar = ([t, open, high, low, close]) => ({ time: t / 1000, open, high, low, close });

function toShade([t, mean]) {
  if (!mean) return { time: t / 1000 };
  const alpha = (0.06 + 0.16 * Math.min(1, Math.abs(mean))).toFixed(3);
  return { time: t / 1000, value: 1, color: `rgba(${mean > 0 ? LONG : SHORT}, ${alpha})` };
}

function toMarker(mark) {
  const time = mark.time_ms / 1000;
  const long = mark.side === "long";
  if (mark.kind === "entry") {
    const text = (mark.open_position ? "open " : "") + (mark.count > 1 ? `${mark.count}×` : long ? "L" : "S");
    return { time, position: long ? "belowBar" : "aboveBar", shape: long ? "arrowUp" : "arrowDown",
             color: `rgb(${long ? LONG : SHORT})`, text, id: markId(mark), size: 1 };
  }
  const pnl = mark.net_pnl || 0;
  const text = mark.count > 1 ? `${mark.count}× ${num(pnl, 2)}` : num(pnl, 2);
  return { time, position: long ? "aboveBar" : "belowBar", shape: "circle", color: pnl >= 0 ? "#26a69a" : "#ef5350",
           text, id: markId(mark), size: 1 };
}

const markId = (m) => `${m.kind}:${m.trade_id ?? (m.open_position ? "open" : m.side)}:${m.time_ms}`;

function render() {
  candles.setData(state.bars.map(toBar));
  shade.setData(state.exposure.map(toShade));
  markers.setMarkers(state.marks.map(toMarker));
  updateLegend();
}

// ------------------------------------------------------------------- loading
async function fetchWindow(end, limit, level = state.level) {
  return api("/api/candles", { symbol: state.market.symbol, level, end, limit });
}

function take(window) {
  state.bars = window.bars;
  state.exposure = window.exposure;
  state.marks = window.marks;
  state.moreBefore = window.more_before;
  state.level = window.level_ms;
  state.levels = window.levels_ms;
  state.market = window.market;
}

async function guarded(work) {
  if (state.busy) return;
  state.busy = true;
  try {
    await work();
    showError(null);
  } catch (error) {
    showError(error);
  } finally {
    state.busy = false;
  }
}

/** Show ``level`` with about SHOWN_BARS bars ending at ``endMs`` (default: the newest). */
function jump(level, endMs = null) {
  return guarded(async () => {
    const window = await fetchWindow(endMs, PAGE_BARS, level);
    take(window);
    quiet();
    render();
    const n = state.bars.length;
    chart.timeScale().setVisibleLogicalRange({ from: Math.max(0, n - SHOWN_BARS), to: n + 3 });
    renderLevels();
    remember();
  });
}

/** The whole ledger, at the finest resolution that fits it in one window. */
function showAll() {
  const { first_ms: first, last_ms: last } = state.market;
  const level = state.levels.find((lv) => (last - first) / lv < PAGE_BARS) ?? state.levels.at(-1);
  return guarded(async () => {
    take(await fetchWindow(last, PAGE_BARS, level));
    quiet();
    render();
    chart.timeScale().fitContent();
    renderLevels();
    remember();
  });
}

/** Older bars before the first one shown, keeping the view where it is. */
function loadOlder() {
  if (!state.moreBefore || !state.bars.length) return;
  guarded(async () => {
    const window = await fetchWindow(state.bars[0][0] - 1, PAGE_BARS);
    const range = chart.timeScale().getVisibleLogicalRange();
    const added = window.bars.length;
    const firstMs = state.bars[0][0];
    state.bars = window.bars.concat(state.bars);
    state.exposure = window.exposure.filter(([t]) => t < firstMs).concat(state.exposure);
    const known = new Set(state.marks.map(markId));
    state.marks = window.marks.filter((m) => !known.has(markId(m))).concat(state.marks)
      .sort((a, b) => a.time_ms - b.time_ms);
    state.moreBefore = window.more_before;
    quiet();
    render();
    if (range) chart.timeScale().setVisibleLogicalRange({ from: range.from + added, to: range.to + added });
  });
}

/** Keep the visible time span, at another resolution. */
function switchLevel(level, from, to) {
  return guarded(async () => {
    const bars = Math.ceil((to - from) * 1000 / level);
    const window = await fetchWindow(Math.round(to * 1000), Math.min(5000, Math.max(PAGE_BARS, 3 * bars)), level);
    take(window);
    quiet();
    render();
    chart.timeScale().setVisibleRange({ from, to });
    renderLevels();
    remember();
  });
}

/** New and updated bars since the last one shown (live). */
async function loadNewer() {
  if (!state.bars.length) return;
  if (state.busy) {  // a window is loading: look again when it is done
    setTimeout(loadNewer, 300);
    return;
  }
  state.busy = true;
  try {
    const lastMs = state.bars.at(-1)[0];
    const window = await fetchWindow(null, 500);
    if (window.level_ms !== state.level || window.market.symbol !== state.market.symbol) return;
    const fresh = window.bars.filter(([t]) => t >= lastMs);
    if (!fresh.length) return;
    if (window.bars[0][0] > lastMs) {  // more new bars than one window: start again at the end
      take(window);
      render();
      return;
    }
    state.market = window.market;
    state.bars = state.bars.filter(([t]) => t < lastMs).concat(fresh);
    const freshShade = window.exposure.filter(([t]) => t >= lastMs);
    state.exposure = state.exposure.filter(([t]) => t < lastMs).concat(freshShade);
    const since = window.start_ms;
    state.marks = state.marks.filter((m) => m.time_ms < since).concat(window.marks);
    fresh.forEach((bar) => candles.update(toBar(bar)));
    freshShade.forEach((row) => shade.update(toShade(row)));
    markers.setMarkers(state.marks.map(toMarker));
    updateLegend();
  } catch (error) {
    showError(error);
  } finally {
    state.busy = false;
  }
}

// ------------------------------------------------------------ zoom and pan
function quiet(ms = 400) {
  state.quietUntil = Date.now() + ms;
}

let zoomTimer = null;
chart.timeScale().subscribeVisibleLogicalRangeChange((range) => {
  updateLegend();
  if (!range || Date.now() < state.quietUntil) return;
  if (range.from < 20) loadOlder();
  clearTimeout(zoomTimer);
  zoomTimer = setTimeout(() => autoLevel(range), 250);
});

function autoLevel(range) {
  if (state.busy || Date.now() < state.quietUntil) return;
  const visible = range.to - range.from;
  const times = chart.timeScale().getVisibleRange();
  if (!times) return;
  const span = (times.to - times.from) * 1000;
  const i = state.levels.indexOf(state.level);
  if (visible > ZOOM_OUT_AT && i < state.levels.length - 1) {
    const level = state.levels.find((lv) => span / lv <= 600) ?? state.levels.at(-1);
    switchLevel(level, times.from, times.to);
  } else if (visible < ZOOM_IN_AT && i > 0) {
    const finer = state.levels.filter((lv) => lv < state.level && span / lv >= 60);
    switchLevel(finer.length ? finer[0] : state.levels[i - 1], times.from, times.to);
  }
}

// ------------------------------------------------------------------ legend
function updateLegend() {
  const last = document.getElementById("last-bar");
  const newest = state.bars.length ? state.bars.at(-1)[0] : null;
  last.dataset.time = newest ?? "";
  last.textContent = newest === null ? "" : `Last bar ${new Date(newest).toISOString().slice(0, 16).replace("T", " ")} UTC`;
  const box = document.getElementById("in-view");
  const range = chart.timeScale().getVisibleRange();
  let entries = 0;
  let exits = 0;
  let entryMarks = 0;
  let exitMarks = 0;
  if (range) {
    for (const mark of state.marks) {
      const t = mark.time_ms / 1000;
      if (t < range.from || t > range.to) continue;
      if (mark.kind === "entry") {
        entries += mark.count;
        entryMarks += 1;
      } else {
        exits += mark.count;
        exitMarks += 1;
      }
    }
  }
  box.dataset.entries = entries;
  box.dataset.exits = exits;
  box.dataset.entryMarks = entryMarks;
  box.dataset.exitMarks = exitMarks;
  box.dataset.from = range ? range.from * 1000 : "";
  box.dataset.to = range ? range.to * 1000 : "";
  box.dataset.level = state.level ?? "";
  box.textContent = `In view: ${entries} entries, ${exits} exits · ${levelName(state.level || 60000)} bars`;
}

chart.subscribeCrosshairMove((param) => {
  const bar = param.seriesData && param.seriesData.get(candles);
  const info = document.getElementById("bar-info");
  if (!bar) {
    info.textContent = "";
    return;
  }
  const when = new Date(bar.time * 1000).toISOString().slice(0, 16).replace("T", " ");
  info.textContent = `${when} UTC O ${price(bar.open)} H ${price(bar.high)} L ${price(bar.low)} C ${price(bar.close)}`;
});

// ---------------------------------------------------------------- controls
function renderLevels() {
  fill(document.getElementById("levels"), state.levels.map((level) =>
    el("button", { class: "btn", type: "button", "aria-pressed": level === state.level ? "true" : "false",
                   text: levelName(level), onclick: () => jumpAround(level) })));
}

/** A resolution chosen by hand: centred on what is in view now. */
function jumpAround(level) {
  const times = chart.timeScale().getVisibleRange();
  if (!times) return jump(level);
  const centre = (times.from + times.to) / 2 * 1000;
  return jump(level, Math.round(centre + level * SHOWN_BARS / 2));
}

function remember() {
  setPageParams({ symbol: state.market.symbol, level: state.level });
}

async function start() {
  const indicator = header();
  try {
    const found = await api("/api/markets");
    state.markets = found.markets;
  } catch (error) {
    showError(error);
    return;
  }
  const select = document.getElementById("symbol");
  fill(select, state.markets.map((m) => el("option", { value: m.symbol, text: `${m.symbol} · ${m.interval}` })));
  if (!state.markets.length) {
    showError("No market in this ledger yet: nothing has been decided.");
    return;
  }
  const wanted = pageParams();
  state.market = state.markets.find((m) => m.symbol === wanted.symbol) || state.markets[0];
  select.value = state.market.symbol;
  select.addEventListener("change", () => {
    state.market = state.markets.find((m) => m.symbol === select.value);
    jump(state.market.interval_ms);
  });
  document.getElementById("all").addEventListener("click", showAll);
  document.getElementById("latest").addEventListener("click", () => jump(state.level));
  await jump(Number(wanted.level) || state.market.interval_ms);
  live(indicator, (change) => {
    if (state.market && change.decided[state.market.symbol] !== undefined) loadNewer();
  });
}

start();

// recgraph demo page: plain JS against the service's JSON API (no build step).
"use strict";
const $ = (id) => document.getElementById(id);
const state = { tab: "user", visitor: [], titles: new Map(), seq: { history: 0, recs: 0 } };

// Stale answers: every request that will redraw a panel (#history, #recs) takes a ticket for it;
// a newer request for that panel, or a tab switch, makes older tickets stale, and a stale answer
// is dropped (e.g. a slow known-user answer arriving after the switch to the visitor tab).
function ticket(...panels) {
  const t = { tab: state.tab };
  for (const p of panels) t[p] = ++state.seq[p];
  return t;
}
function current(t) {
  return t.tab === state.tab && Object.keys(state.seq).every((p) => t[p] === undefined || t[p] === state.seq[p]);
}

async function api(path, body) {
  const opts = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const res = await fetch(path, opts);
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const d = data.detail;
    throw new Error(typeof d === "string" ? d : Array.isArray(d) ? d.map((e) => e.msg).join("; ") : res.statusText);
  }
  return data;
}

function itemLi(row, { onClick, scored } = {}) {
  const li = document.createElement("li");
  li.dataset.item = row.item;
  const name = document.createElement("span");
  name.className = "title";
  name.textContent = row.title || String(row.item);
  if (row.title) {
    const id = document.createElement("span");
    id.className = "id";
    id.textContent = "#" + row.item;
    name.appendChild(id);
  }
  li.appendChild(name);
  if (row.title) state.titles.set(String(row.item), row.title);
  const right = document.createElement("span");
  if (scored) {
    const s = document.createElement("span");
    s.className = "score";
    s.textContent = row.score === null ? "–" : row.score.toFixed(3);
    right.appendChild(s);
    for (const src of row.sources || []) {
      const b = document.createElement("span");
      b.className = "src src-" + src;
      b.textContent = src;
      right.appendChild(b);
    }
  } else if (row.count !== undefined && row.count !== null) {
    right.className = "score";
    right.textContent = row.count + "×";
  }
  li.appendChild(right);
  if (onClick) { li.classList.add("clickable"); li.addEventListener("click", () => onClick(row)); }
  return li;
}

function fill(list, rows, opts) {
  list.replaceChildren(...rows.map((r) => itemLi(r, opts)));
}

function params() {
  return { k: Math.max(1, Math.min(1000, parseInt($("k").value, 10) || 10)), exclude_seen: $("exclude-seen").checked };
}

function showRecs(data) {
  $("message").textContent = "";
  fill($("recs"), data.items, { scored: true, onClick: state.tab === "visitor" ? addVisitorItem : undefined });
  const t = data.timings_ms.total !== undefined ? ` · ${data.timings_ms.total.toFixed(2)} ms` : "";
  $("rec-meta").textContent = `(${data.items.length} · ${data.model}${data.ranker ? " → " + data.ranker : ""}${t})`;
}

function showError(err) {
  $("recs").replaceChildren();
  $("rec-meta").textContent = "";
  $("message").textContent = err.message;
}

async function recommendUser(user) {
  if (!user) return;
  const t = ticket("history", "recs");
  try {
    const [hist, recs] = await Promise.all([
      api(`/users/${encodeURIComponent(user)}/history?limit=50`),
      api("/recommend", { user, ...params() }),
    ]);
    if (!current(t)) return;
    fill($("history"), hist.items);
    $("history-count").textContent = `(${hist.total} items, most recent first)`;
    showRecs(recs);
  } catch (err) {
    if (!current(t)) return;
    $("history").replaceChildren();
    $("history-count").textContent = "";
    showError(err);
  }
}

async function recommendVisitor() {
  fill($("visitor-history"), state.visitor.map((item) => ({ item, title: state.titles.get(String(item)) })),
       { onClick: (row) => { state.visitor = state.visitor.filter((x) => String(x) !== String(row.item)); recommendVisitor(); } });
  $("visitor-count").textContent = `(${state.visitor.length})`;
  const t = ticket("recs");
  if (!state.visitor.length) { $("recs").replaceChildren(); $("rec-meta").textContent = ""; $("message").textContent = "Pick a few items."; return; }
  try {
    const data = await api("/recommend", { history: state.visitor, ...params() });
    if (current(t)) showRecs(data);
  } catch (err) { if (current(t)) showError(err); }
}

function addVisitorItem(row) {
  if (!state.visitor.some((x) => String(x) === String(row.item))) state.visitor.push(row.item);
  recommendVisitor();
}

async function browse(q) {
  const t = ticket("history");
  const data = await api(`/items?limit=30${q ? "&q=" + encodeURIComponent(q) : ""}`);
  if (!current(t)) return;
  $("browse-label").textContent = q ? `(${data.total} matching “${q}”)` : "(most popular)";
  fill($("history"), data.items, { onClick: addVisitorItem });
}

function setTab(tab) {
  state.tab = tab;
  ticket("history", "recs");  // answers to the other tab's requests are stale now
  for (const b of document.querySelectorAll(".tab")) b.classList.toggle("active", b.dataset.tab === tab);
  $("user-controls").hidden = tab !== "user";
  $("visitor-controls").hidden = tab !== "visitor";
  $("history").replaceChildren();
  $("recs").replaceChildren();
  $("rec-meta").textContent = "";
  $("message").textContent = "";
  if (tab === "visitor") { browse(""); recommendVisitor(); }
}

async function init() {
  // controls work at once (before the first answers); the page's data fills in as it arrives
  $("user-form").addEventListener("submit", (e) => { e.preventDefault(); recommendUser($("user-input").value.trim()); });
  $("user-random").addEventListener("click", () => {
    if (!state.users || !state.users.length) return;
    const u = state.users[Math.floor(Math.random() * state.users.length)];
    $("user-input").value = u;
    recommendUser(String(u));
  });
  $("item-search").addEventListener("submit", (e) => { e.preventDefault(); browse($("item-query").value.trim()); });
  $("visitor-clear").addEventListener("click", () => { state.visitor = []; recommendVisitor(); });
  for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => setTab(b.dataset.tab));
  for (const id of ["k", "exclude-seen"]) $(id).addEventListener("change", () => {
    if (state.tab === "user") recommendUser($("user-input").value.trim()); else recommendVisitor();
  });
  const fromUrl = new URLSearchParams(location.search).get("user");
  if (fromUrl) { $("user-input").value = fromUrl; recommendUser(fromUrl); }
  try {
    const h = await api("/health");
    const r = h.retrieval;
    $("model-info").textContent = `${r.model} · ${r.n_users.toLocaleString()} users · ${r.n_items.toLocaleString()} items · ` +
      `paths ${r.sources.join(", ")}${r.index ? " · index " + r.index : ""}${r.ranker ? " · ranker " + r.ranker.model : ""}`;
    state.users = (await api("/users?limit=200")).users;
    $("user-list").replaceChildren(...state.users.map((u) => Object.assign(document.createElement("option"), { value: u })));
  } catch (err) { $("model-info").textContent = "service unavailable: " + err.message; }
}
init();

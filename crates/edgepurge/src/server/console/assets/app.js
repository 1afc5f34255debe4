// edgepurge console: plain JavaScript over the admin API (/v1/, docs/api.md). Everything
// shown is set as text (never parsed as HTML), so keys and errors cannot inject markup.
"use strict";

const TOKEN_KEY = "edgepurge.adminToken";
const LOG_PAGE = 50;
const REFRESH_MS = 3000;

const $ = (sel) => document.querySelector(sel);

/** An element with text and attributes; children appended in order. */
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

/** RFC 3339 → the reader's local time, with the UTC original as a tooltip. */
function time(text) {
  if (!text) return el("span", { class: "muted" }, "–");
  const d = new Date(text);
  const shown = isNaN(d) ? text : d.toLocaleString();
  return el("time", { datetime: text, title: text }, shown);
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.field = body && body.field;
  }
}

/** Calls the admin API; the token (if any) from this tab's session storage. */
async function api(method, path, body) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers["Authorization"] = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiError(0, { error: `the server does not answer (${e.message})` });
  }
  if (resp.status === 204) return null;
  let data = null;
  try {
    data = await resp.json();
  } catch (_) {
    data = null;
  }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

function banner(text) {
  const b = $("#banner");
  b.textContent = text || "";
  b.hidden = !text;
}

/** 401: ask for the token; 403 and the rest: say why in the banner. */
function handle(err) {
  if (err.status === 401) unauthorized(err);
  else banner(err.message);
}

/** Asks for the token; says why when the one in use was refused. */
function unauthorized(err) {
  const had = sessionStorage.getItem(TOKEN_KEY);
  sessionStorage.removeItem(TOKEN_KEY);
  stopTimers();
  $("#main").hidden = true;
  $("#token-panel").hidden = false;
  $("#token-error").textContent = had ? `That token was refused: ${err.message}` : "";
  $("#token-input").focus();
}

// --- state

let providers = [];
let logRule = null;
let logNext = null;
let timers = [];

function stopTimers() {
  timers.forEach(clearInterval);
  timers = [];
}

// --- status and providers

/** The last status asked for: an older answer arriving after a newer one (a periodic refresh
 * overtaken by the one after a change) is dropped, so the header never goes back. */
let statusAsked = 0;

async function loadStatus() {
  const asked = ++statusAsked;
  const s = await api("GET", "/v1/status");
  if (asked !== statusAsked) return;
  const h = $("#health");
  h.textContent = s.status;
  h.className = `badge ${s.status}`;
  $("#version").textContent = `edgepurge ${s.version}`;
  showUnserved(s.lanes, s.fanout);
}

/** Lanes whose provider account is no longer in the config (removed or renamed): nothing sends
 * their work. Each can be discarded (moved to the dead letters) after confirmation. Targets such
 * an account never fanned out to its nodes wait for it (they cannot be discarded). */
function showUnserved(lanes, fanout) {
  const box = $("#unserved");
  box.replaceChildren();
  for (const f of fanout) {
    if (f.served !== false || f.targets === 0) continue;
    box.append(
      el(
        "div",
        { class: "card unserved", "data-account": f.account },
        el("strong", {}, f.account),
        ` — the config no longer has this provider account (removed or renamed?): ${f.targets} target(s) wait to be fanned out to its nodes, oldest from `,
        time(f.oldest_at),
        ". They go out if it comes back under that name.",
      ),
    );
  }
  for (const l of lanes) {
    const live = l.pending + l.waiting_batches + l.inflight_batches;
    if (l.served !== false || live === 0) continue;
    box.append(
      el(
        "div",
        { class: "card unserved", "data-lane": l.lane },
        el("strong", {}, l.lane),
        ` — no provider account of the config serves this lane (removed or renamed?), so nothing sends its ${l.pending} pending job(s) and ${l.waiting_batches} waiting batch(es). Add the account back under its old name, or `,
        el("button", { type: "button", class: "link danger", onclick: () => discard(l.lane) }, "Discard"),
        " them to the dead letters.",
      ),
    );
  }
}

function discard(lane) {
  confirmThen(
    `Discard the queued work of lane "${lane}"? It is not sent; its records show "dead" with the reason, and a retry of the account queues them again once it is back.`,
    async () => {
      await api("POST", "/v1/discard", { lane });
      await loadStatus();
    },
  );
}

/** Asks `question` in the confirmation dialog; on OK runs `action`, its failure shown. */
function confirmThen(question, action) {
  const dialog = $("#confirm-dialog");
  $("#confirm-text").textContent = question;
  dialog.returnValue = "";
  dialog.showModal();
  dialog.addEventListener(
    "close",
    async () => {
      if (dialog.returnValue !== "ok") return;
      try {
        await action();
      } catch (e) {
        handle(e);
      }
    },
    { once: true },
  );
}

async function loadProviders() {
  const data = await api("GET", "/v1/providers");
  providers = data.providers;
  const box = $("#providers");
  box.replaceChildren();
  if (!providers.length) {
    box.append(el("p", { class: "muted" }, "No provider accounts are configured."));
  }
  for (const p of providers) {
    const lanes = p.lanes.map((l) =>
      el(
        "div",
        { class: "lane" },
        el("div", {}, el("strong", {}, l.lane), " ", el("span", { class: `badge ${l.state}` }, l.state)),
        el(
          "div",
          { class: "muted" },
          `${l.succeeded ?? 0} succeeded, ${l.failed ?? 0} failed · pending ${l.queue.pending}, dead ${l.queue.dead_batches}`,
        ),
        el("div", {}, "Last success: ", time(l.last_success_at)),
        l.last_error ? el("div", { class: "error" }, "Last error: ", l.last_error) : null,
        ...l.quota.map((q) =>
          el(
            "div",
            { class: "quota" },
            `${q.kind} quota: ${q.left} of ${q.daily} left today `,
            el("meter", { min: 0, max: q.daily, value: q.left, low: q.daily / 10, optimum: q.daily }),
          ),
        ),
      ),
    );
    box.append(
      el(
        "div",
        { class: "card" },
        el("h3", {}, p.name, " ", el("span", { class: "muted" }, p.kind)),
        el("div", { class: "muted" }, `purges ${p.supports.join(", ")} · ${p.rate_per_s} requests/s`),
        p.fanout && p.fanout.targets > 0
          ? el(
              "div",
              {},
              `${p.fanout.targets} targets not yet fanned out to the nodes (in no lane's pending yet), oldest from `,
              time(p.fanout.oldest_at),
            )
          : null,
        ...lanes,
      ),
    );
  }
}

// --- rules

async function lastOutcome(name) {
  try {
    const page = await api("GET", `/v1/log?rule=${encodeURIComponent(name)}&limit=1`);
    return page.records[0] || null;
  } catch (_) {
    return null;
  }
}

/** As for the status: only the answer to the last request for the rules is shown. */
let rulesAsked = 0;

async function loadRules() {
  const asked = ++rulesAsked;
  const data = await api("GET", "/v1/rules");
  const body = $("#rules tbody");
  const rows = await Promise.all(
    data.rules.map(async (r) => {
      const last = await lastOutcome(r.name);
      const cli = r.origin === "cli";
      const state = !r.enabled ? "disabled" : r.in_force ? "active" : "not applied";
      const condition = r.prefix || r.suffix
        ? [r.prefix && `prefix ${r.prefix}`, r.suffix && `suffix ${r.suffix}`].filter(Boolean).join(", ")
        : "whole bucket";
      const names = r.providers && r.providers.length ? r.providers : [r.provider];
      return el(
        "tr",
        { "data-rule": r.name },
        el("td", {}, r.name, r.origin === "config" ? el("span", { class: "muted", title: "from the config file: change it there" }, " (file)") : null),
        el("td", {}, el("span", { class: `badge ${state.replace(" ", "-")}` }, state)),
        el("td", {}, r.bucket),
        el("td", {}, r.events.join(", ")),
        el("td", {}, condition),
        el("td", {}, r.domains.join(" ")),
        el("td", {}, names.join(", ")),
        el("td", {}, r.mode),
        el(
          "td",
          {},
          last
            ? el("span", { title: last.error || "" }, el("span", { class: `badge ${last.status}` }, last.status), " ", time(last.updated))
            : el("span", { class: "muted" }, "none yet"),
        ),
        el(
          "td",
          { class: "actions" },
          el("button", { type: "button", class: "link", onclick: () => openLog(r.name) }, "View log"),
          cli
            ? el("button", { type: "button", class: "link", onclick: () => toggle(r) }, r.enabled ? "Disable" : "Enable")
            : null,
          cli ? el("button", { type: "button", class: "link danger", onclick: () => remove(r.name) }, "Delete") : null,
        ),
      );
    }),
  );
  if (asked !== rulesAsked) return;
  body.replaceChildren(...rows);
  // Counted from the list shown, so the header and the list never disagree (a count from
  // /v1/status lagged one refresh behind a rule just added or deleted).
  const inForce = data.rules.filter((r) => r.in_force && r.enabled).length;
  $("#in-force").textContent = `${inForce} rule(s) in force`;
  $("#rules-empty").hidden = rows.length > 0;
}

/** After a rule is added, enabled, disabled or deleted: the list and its count of rules in
 * force (one answer), and the status. */
async function rulesChanged() {
  await Promise.all([loadRules(), loadStatus()]);
}

async function toggle(rule) {
  try {
    await api("POST", `/v1/rules/${encodeURIComponent(rule.name)}/${rule.enabled ? "disable" : "enable"}`);
    await rulesChanged();
  } catch (e) {
    handle(e);
  }
}

function remove(name) {
  confirmThen(
    `Delete rule "${name}"? Events no longer purge through it; its log records are kept.`,
    async () => {
      await api("DELETE", `/v1/rules/${encodeURIComponent(name)}`);
      if (logRule === name) closeLog();
      await rulesChanged();
    },
  );
}

// --- add rule

function fillProviders() {
  const box = $("#rule-providers");
  box.querySelectorAll("label").forEach((l) => l.remove());
  for (const [i, p] of providers.entries()) {
    box.append(
      el(
        "label",
        {},
        el("input", { type: "checkbox", name: "providers", value: p.name, checked: i === 0 }),
        ` ${p.name} (${p.kind})`,
      ),
    );
  }
}

function clearErrors() {
  $("#rule-error").textContent = "";
  document.querySelectorAll(".field-error").forEach((e) => (e.textContent = ""));
  document.querySelectorAll("#rule-form [aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
}

/** The server's 400 beside the field it names (`domains`, `events[1]`, …). */
function showFieldError(err) {
  const field = (err.field || "").split(/[.[]/)[0];
  const slot = document.querySelector(`.field-error[data-field="${CSS.escape(field)}"]`);
  if (slot) {
    slot.textContent = err.message;
    const input = document.querySelector(`#rule-form [name="${CSS.escape(field)}"]`);
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
  } else {
    $("#rule-error").textContent = err.message;
  }
}

function lines(text) {
  return text.split("\n").map((s) => s.trim()).filter(Boolean);
}

function ruleFromForm(form) {
  const f = new FormData(form);
  const rule = {
    name: f.get("name").trim(),
    bucket: f.get("bucket").trim(),
    events: f.getAll("events"),
    domains: lines(f.get("domains")),
    mode: f.get("mode"),
  };
  const cond = f.get("condition");
  const value = (form.elements["condition-value"].value || "").trim();
  if (cond === "prefix") rule.prefix = value;
  if (cond === "suffix") rule.suffix = value;
  const chosen = f.getAll("providers");
  if (chosen.length === 1) rule.provider = chosen[0];
  else rule.providers = chosen;
  if (rule.mode === "tag") rule.tags = lines(f.get("tags") || "");
  if (f.get("verify")) rule.verify = true;
  if (f.get("warm")) rule.warm = true;
  const interval = Number(f.get("min_interval_ms") || 0);
  if (interval) rule.min_interval_ms = interval;
  return rule;
}

function openRuleDialog() {
  const form = $("#rule-form");
  form.reset();
  clearErrors();
  fillProviders();
  form.elements["condition-value"].disabled = true;
  $("#tags-row").hidden = true;
  $("#rule-dialog").showModal();
}

async function submitRule(event) {
  event.preventDefault();
  clearErrors();
  const submit = $("#rule-submit");
  submit.disabled = true;
  try {
    await api("POST", "/v1/rules", ruleFromForm($("#rule-form")));
    $("#rule-dialog").close();
    await rulesChanged();
  } catch (e) {
    if (e.status === 400) showFieldError(e);
    else if (e.status === 401) {
      $("#rule-dialog").close();
      handle(e);
    } else $("#rule-error").textContent = e.message;
  } finally {
    submit.disabled = false;
  }
}

// --- per-rule log

function logRow(r) {
  const targets = r.targets.length > 1 ? `${r.targets[0]} (+${r.targets.length - 1})` : r.targets[0] || "–";
  const verified = r.verified ? `verified=${r.verified}${r.verify_note ? ` (${r.verify_note})` : ""}` : "";
  const warmed = r.warmed ? `warmed=${r.warmed}${r.warm_note ? ` (${r.warm_note})` : ""}${r.warm_task ? ` task ${r.warm_task}` : ""}` : "";
  const details = r.error
    ? el("details", {}, el("summary", {}, r.error.length > 60 ? `${r.error.slice(0, 60)}…` : r.error),
        el("pre", {}, r.error, r.request_id ? `\nrequest id: ${r.request_id}` : "", r.task_id ? `\ntask id: ${r.task_id}` : "", verified ? `\n${verified}` : "", warmed ? `\n${warmed}` : "", r.note ? `\n${r.note}` : ""))
    : el("span", { class: "muted", title: [r.verify_note, r.warm_note, r.note].filter(Boolean).join("\n") },
        [r.task_id ? `task ${r.task_id}` : "", r.verified ? `verified=${r.verified}` : "", r.warmed ? `warmed=${r.warmed}` : "", r.note || ""].filter(Boolean).join(" "));
  return el(
    "tr",
    { "data-id": r.id },
    el("td", {}, time(r.time)),
    el("td", {}, el("span", { class: `badge ${r.status}` }, r.status)),
    el("td", {}, r.event),
    el("td", { class: "key" }, `${r.bucket}/${r.key}`),
    el("td", { class: "key", title: r.targets.join("\n") }, targets),
    el("td", {}, r.provider || "–"),
    el("td", {}, r.attempts),
    el("td", {}, details),
  );
}

function logQuery(cursor) {
  const q = new URLSearchParams({ rule: logRule, limit: String(LOG_PAGE) });
  const status = $("#log-status").value;
  if (status) q.set("status", status);
  if (cursor) q.set("cursor", cursor);
  return `/v1/log?${q}`;
}

/** The newest page again. Older rows loaded with "Older records" stay below it when the
 * fresh page reaches them; if more records arrived than a page holds, the view starts over
 * from the fresh page (so it never shows a gap). */
async function refreshLog() {
  if (!logRule) return;
  const page = await api("GET", logQuery(null));
  const body = $("#log tbody");
  const shownIds = new Set([...body.children].map((tr) => Number(tr.dataset.id)));
  const fresh = page.records.map(logRow);
  const oldest = page.records.length ? page.records[page.records.length - 1].id : Infinity;
  const older = [...body.children].filter((tr) => Number(tr.dataset.id) < oldest);
  const joined = page.records.some((r) => shownIds.has(r.id));
  if (older.length && joined) {
    body.replaceChildren(...fresh, ...older);
  } else {
    body.replaceChildren(...fresh);
    logNext = page.next;
  }
  $("#log-more").hidden = !logNext;
  $("#log-empty").hidden = body.children.length > 0;
}

async function moreLog() {
  if (!logNext) return;
  const page = await api("GET", logQuery(logNext));
  $("#log tbody").append(...page.records.map(logRow));
  logNext = page.next;
  $("#log-more").hidden = !logNext;
}

async function openLog(name) {
  logRule = name;
  logNext = null;
  $("#log-rule").textContent = name;
  $("#log tbody").replaceChildren();
  $("#log-panel").hidden = false;
  try {
    await refreshLog();
  } catch (e) {
    handle(e);
  }
  $("#log-panel").scrollIntoView({ behavior: "smooth", block: "start" });
}

function closeLog() {
  logRule = null;
  $("#log-panel").hidden = true;
}

// --- start

async function refresh(everything) {
  const work = [loadStatus()];
  if (everything) work.push(loadProviders(), loadRules());
  if (logRule && $("#log-live").checked) work.push(refreshLog());
  await Promise.all(work);
}

async function start() {
  banner("");
  try {
    await loadStatus();
  } catch (e) {
    if (e.status === 401) return unauthorized(e);
    banner(e.message);
    return;
  }
  $("#token-panel").hidden = true;
  $("#main").hidden = false;
  $("#forget-token").hidden = !sessionStorage.getItem(TOKEN_KEY);
  try {
    await loadProviders();
    await loadRules();
  } catch (e) {
    handle(e);
    return;
  }
  stopTimers();
  let tick = 0;
  timers.push(
    setInterval(() => {
      if (document.hidden) return;
      tick += 1;
      // The log (when live) and the status every tick; rules and providers every 4th.
      refresh(tick % 4 === 0).then(() => banner(""), handle);
    }, REFRESH_MS),
  );
}

document.addEventListener("DOMContentLoaded", () => {
  $("#token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("#token-input").value.trim());
    $("#token-input").value = "";
    start();
  });
  $("#forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    location.reload();
  });
  $("#add-rule").addEventListener("click", openRuleDialog);
  $("#rule-cancel").addEventListener("click", () => $("#rule-dialog").close());
  $("#rule-form").addEventListener("submit", submitRule);
  $("#rule-form").addEventListener("change", (e) => {
    const form = $("#rule-form");
    if (e.target.name === "condition") {
      const input = form.elements["condition-value"];
      input.disabled = e.target.value === "all";
      const slot = e.target.value === "all" ? "" : e.target.value;
      input.placeholder = slot === "suffix" ? ".css" : "img/";
      if (!input.disabled) input.focus();
    }
    if (e.target.name === "mode") $("#tags-row").hidden = e.target.value !== "tag";
  });
  $("#log-status").addEventListener("change", () => openLog(logRule));
  $("#log-more").addEventListener("click", () => moreLog().catch(handle));
  $("#log-close").addEventListener("click", closeLog);
  start();
});

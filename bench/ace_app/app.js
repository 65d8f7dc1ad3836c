// The reference app for bench/run.py: the same contract as the Django demo, written the way an
// atlassian-connect-express (ACE) 11.5.3 app is, with ACE's public API and its Sequelize store
// on PostgreSQL.
//
//   GET  /configure     addon.authenticate()   page load: reads the tenant's settings, renders
//   POST /configure     addon.checkValidToken() AJAX save: validates, merges, writes
//   POST /installed     ACE's own signed-install route (RS256, key fetched from
//                       CONNECT_KEYS_CDN_URL/<kid>)
//   GET  /api/settings  addon.checkValidToken() the tenant's settings as JSON
//   GET  /health        unauthenticated baseline
//
// Environment: PORT, DB_URL (read by ACE's Sequelize adapter), CONNECT_KEYS_CDN_URL (read by
// ACE), ACE_WORKERS (node processes; the machine has 2 cores, like the gunicorn side).
"use strict";

const cluster = require("node:cluster");
const express = require("express");
const ace = require("atlassian-connect-express");

const SETTING_KEY = "appSettings";
const WORKERS = Math.max(1, parseInt(process.env.ACE_WORKERS || "2", 10));

// The demo form's fields, defaults and rules (demo_project/forms.py), checked by hand as an
// ACE app would have to.
const PRIORITIES = ["low", "medium", "high"];
const CHANNELS = ["email", "slack", "teams"];
const DEFAULTS = {
  team_name: "Support",
  default_priority: "medium",
  notify: true,
  results_per_page: 25,
  channels: ["email"],
  project_keys: [],
  api_token: null
};
const PROJECT_KEY = /^[A-Z][A-Z0-9_]{1,9}$/;

function validate(values) {
  const errors = {};
  const fail = (name, message) => {
    errors[name] = [message];
  };
  for (const name of Object.keys(values)) {
    if (!(name in DEFAULTS)) fail(name, "Unknown field.");
  }
  const v = values;
  if ("team_name" in v && (typeof v.team_name !== "string" || !v.team_name || v.team_name.length > 80))
    fail("team_name", "Enter 1 to 80 characters.");
  if ("default_priority" in v && !PRIORITIES.includes(v.default_priority))
    fail("default_priority", "Select a valid choice.");
  if ("notify" in v && typeof v.notify !== "boolean") fail("notify", "Enter true or false.");
  if ("results_per_page" in v && !(Number.isInteger(v.results_per_page) && v.results_per_page >= 1 && v.results_per_page <= 100))
    fail("results_per_page", "Enter a whole number from 1 to 100.");
  if ("channels" in v && !(Array.isArray(v.channels) && v.channels.every(c => CHANNELS.includes(c))))
    fail("channels", "Select valid choices.");
  if ("project_keys" in v && !(Array.isArray(v.project_keys) && v.project_keys.length <= 50 && v.project_keys.every(k => typeof k === "string" && PROJECT_KEY.test(k))))
    fail("project_keys", "Use project keys such as SUP or OPS.");
  if ("api_token" in v && v.api_token !== null && (typeof v.api_token !== "string" || v.api_token.length > 200))
    fail("api_token", "Enter at most 200 characters.");
  return errors;
}

function redact(values) {
  return { ...values, api_token: { secret: true, set: Boolean(values.api_token) } };
}

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const esc = s => String(s).replace(/[&<>"']/g, c => ESCAPES[c]);
const jsonForScript = obj => JSON.stringify(obj).replace(/</g, "\\u003c");

function option(value, label, selected) {
  return `<option value="${esc(value)}"${selected ? " selected" : ""}>${esc(label)}</option>`;
}

function page(res, state) {
  const v = state.values;
  const channel = c =>
    `<label><input type="checkbox" name="channels" value="${c}"${v.channels.includes(c) ? " checked" : ""}> ${c}</label>`;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="token" content="${esc(res.locals.token)}">
<title>Connect Settings Demo · Configure</title>
<script src="${esc(res.locals.hostScriptUrl)}" async></script></head>
<body><main>
<h1>Escalation settings</h1>
<p>How the demo app escalates issues on ${esc(res.locals.hostBaseUrl)}. Changes apply to this site only.</p>
<form id="configure" data-version="${state.version}">
<label>Team name <input name="team_name" maxlength="80" required value="${esc(v.team_name)}"></label>
<label>Default priority <select name="default_priority">${PRIORITIES.map(p => option(p, p, p === v.default_priority)).join("")}</select></label>
<label><input type="checkbox" name="notify"${v.notify ? " checked" : ""}> Notify the team when an issue is escalated</label>
<label>Results per page <input type="number" name="results_per_page" min="1" max="100" value="${esc(v.results_per_page)}"></label>
<fieldset><legend>Notification channels</legend>${CHANNELS.map(channel).join("")}</fieldset>
<label>Projects <textarea name="project_keys">${esc(v.project_keys.join("\n"))}</textarea></label>
<label>Escalation service API token <input type="password" name="api_token" placeholder="${v.api_token ? "set" : "not set"}"></label>
<button type="submit">Save</button>
</form>
<script id="app-settings" type="application/json">${jsonForScript({ values: redact(v), version: state.version })}</script>
</main></body></html>`;
}

async function loadState(addon, clientKey) {
  const stored = (await addon.settings.get(SETTING_KEY, clientKey)) || {};
  return { values: { ...DEFAULTS, ...(stored.values || {}) }, version: stored.version || 0 };
}

function startWorker() {
  const app = express();
  app.set("x-powered-by", false);
  // Before ACE registers /installed (on the next tick): ACE reads req.body.
  app.use(express.json({ limit: "64kb" }));
  const addon = ace(app);
  app.use(addon.middleware());

  app.get("/health", (req, res) => res.json({ ok: true }));

  app.get("/configure", addon.authenticate(), async (req, res, next) => {
    try {
      const state = await loadState(addon, req.context.clientKey);
      res.set("Cache-Control", "no-store");
      res.type("html").send(page(res, state));
    } catch (err) {
      next(err);
    }
  });

  app.post("/configure", addon.checkValidToken(), async (req, res, next) => {
    try {
      const body = req.body || {};
      if (typeof body.values !== "object" || body.values === null || Array.isArray(body.values))
        return res.status(400).json({ error: "invalid_field", message: "'values' must be a JSON object." });
      const errors = validate(body.values);
      if (Object.keys(errors).length)
        return res.status(400).json({ error: "invalid_configuration", errors });
      const clientKey = req.context.clientKey;
      const state = await loadState(addon, clientKey);
      if (body.version !== undefined && body.version !== state.version)
        return res.status(409).json({ error: "conflict", current: { values: redact(state.values), version: state.version } });
      const values = { ...state.values, ...body.values };
      const version = state.version + 1;
      await addon.settings.set(SETTING_KEY, { values, version }, clientKey);
      res.set("Cache-Control", "no-store");
      res.json({ values: redact(values), version, changed: Object.keys(body.values) });
    } catch (err) {
      next(err);
    }
  });

  app.get("/api/settings", addon.checkValidToken(), async (req, res, next) => {
    try {
      const stored = await addon.settings.get(SETTING_KEY, req.context.clientKey);
      res.json({ settings: stored ? { [SETTING_KEY]: stored } : {} });
    } catch (err) {
      next(err);
    }
  });

  const server = app.listen(addon.config.port(), "127.0.0.1");
  process.on("SIGTERM", () => server.close(() => process.exit(0)));
}

async function createTables() {
  // Every worker's store runs Sequelize sync() on start; create the tables once first so two
  // workers never race on CREATE TABLE.
  const config = require("./config.json").production.store;
  const SequelizeAdapter = require("atlassian-connect-express/lib/store/sequelize");
  const store = SequelizeAdapter({ info() {}, warn() {}, error() {} }, { ...config });
  await Promise.all([store.connectionPromise, store.installationMappingPromise, store.forgeSettingsPromise]);
  await store.sequelize.close();
}

if (cluster.isPrimary && WORKERS > 1) {
  createTables().then(
    () => {
      for (let i = 0; i < WORKERS; i += 1) cluster.fork();
      process.on("SIGTERM", () => {
        for (const worker of Object.values(cluster.workers)) worker.kill("SIGTERM");
        process.exit(0);
      });
    },
    err => {
      console.error(err);
      process.exit(1);
    }
  );
} else {
  startWorker();
}

// Browser test of the web console, run by crates/edgepurge/tests/console.rs against a server
// it started: EDGEPURGE_URL (http://127.0.0.1:PORT) with admin token EDGEPURGE_ADMIN_TOKEN,
// a config rule "site" with at least one log record, and CHROMIUM (the headless shell).
"use strict";
const assert = require("node:assert/strict");
const { chromium } = require("playwright-core");

const base = process.env.EDGEPURGE_URL;
const token = process.env.EDGEPURGE_ADMIN_TOKEN;

// Screenshots as test artifacts, when SCREENSHOT_DIR names a directory.
async function shot(page, name) {
  const dir = process.env.SCREENSHOT_DIR;
  if (dir) await page.screenshot({ path: `${dir}/${name}.png`, fullPage: true });
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium-headless-shell",
    args: ["--no-sandbox"],
  });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    // Nothing but this server is ever asked for.
    const outside = [];
    page.on("request", (r) => {
      if (!r.url().startsWith(base)) outside.push(r.url());
    });

    // The token is asked for, a wrong one refused, the right one kept for the tab.
    await page.goto(`${base}/`);
    await page.waitForSelector("#token-panel:not([hidden])");
    assert.ok(await page.isHidden("#main"));
    await page.fill("#token-input", "not-the-token");
    await page.click("#token-form button");
    await page.waitForSelector("#token-error:not(:empty)");
    assert.match(await page.textContent("#token-error"), /refused/);
    await page.fill("#token-input", token);
    await page.click("#token-form button");
    await page.waitForSelector('tr[data-rule="site"]');
    assert.equal(await page.evaluate(() => sessionStorage.getItem("edgepurge.adminToken")), token);
    await page.reload();
    await page.waitForSelector('tr[data-rule="site"]');
    // The header counts the rules in force; it changes with the list (read at once after a
    // change, not one refresh later), and agrees with the server's count.
    const inForce = async () => (await page.textContent("#in-force")).match(/^(\d+) rule\(s\) in force$/)?.[1];
    assert.equal(await inForce(), "1");
    const status = await page.evaluate(async (t) => {
      const r = await fetch("/v1/status", { headers: { Authorization: `Bearer ${t}` } });
      return r.json();
    }, token);
    assert.equal(String(status.rules_in_force), await inForce());

    // A config rule: listed with its last outcome, and no delete button.
    const site = page.locator('tr[data-rule="site"]');
    assert.match(await site.textContent(), /succeeded/);
    assert.equal(await site.locator("text=Delete").count(), 0);

    // Add rule: the server's 400 shows beside the field it names, then the rule is added.
    await page.click("#add-rule");
    await page.fill("#rule-form [name=name]", "ui-rule");
    await page.fill("#rule-form [name=bucket]", "ui-bucket");
    await page.uncheck("#rule-form [name=events][value=removed]");
    await page.check("#rule-form [name=condition][value=suffix]");
    await page.fill("#rule-form [name=condition-value]", ".css");
    await page.fill("#rule-form [name=domains]", "cdn.example.com");
    await page.click("#rule-submit");
    const domainsError = page.locator('.field-error[data-field="domains"]');
    await domainsError.waitFor();
    assert.match(await domainsError.textContent(), /scheme/);
    assert.equal(await page.getAttribute("#rule-form [name=domains]", "aria-invalid"), "true");
    await page.fill("#rule-form [name=domains]", "https://cdn.example.com");
    await page.click("#rule-submit");
    const row = page.locator('tr[data-rule="ui-rule"]');
    await row.waitFor();
    assert.equal(await page.evaluate(() => document.querySelector("#rule-dialog").open), false);
    assert.match(await row.textContent(), /active/);
    assert.match(await row.textContent(), /suffix \.css/);
    assert.equal(await inForce(), "2", "the count includes the rule just added");
    await shot(page, "rules");

    // Disable and enable.
    // (Exact texts: "text=disabled" also matched the actions cell, "…DisableDelete".)
    await row.locator('button:text-is("Disable")').click();
    await row.locator('.badge:text-is("disabled")').waitFor();
    assert.equal(await inForce(), "1", "a disabled rule is not in force");
    await row.locator('button:text-is("Enable")').click();
    await row.locator('.badge:text-is("active")').waitFor();
    assert.equal(await inForce(), "2");

    // The log of "site" with a status filter; error details of a failed record.
    await site.locator("text=View log").click();
    await page.waitForSelector("#log tbody tr");
    assert.match(await page.textContent("#log tbody"), /succeeded/);
    await shot(page, "log");
    await page.selectOption("#log-status", "dead");
    await page.waitForSelector("#log-empty:not([hidden])");
    await page.selectOption("#log-status", "");
    await page.waitForSelector("#log tbody tr");

    // Providers: the account, its lane and quota.
    const providers = await page.textContent("#providers");
    assert.match(providers, /tencent/);
    assert.match(providers, /quota: \d+ of \d+ left/);

    // A lane whose account left the config: said, and discarded after confirmation.
    const unserved = page.locator('#unserved [data-lane="old"]');
    await unserved.waitFor();
    assert.match(await unserved.textContent(), /no provider account of the config serves this lane/);
    await unserved.locator("text=Discard").click();
    await page.click("#confirm-dialog button[value=cancel]");
    // Cancelled: nothing was asked of the server (its queue still holds the job).
    await page.waitForTimeout(300);
    assert.equal(await unserved.count(), 1);
    const queued = await page.evaluate(async (t) => {
      const r = await fetch("/v1/status", { headers: { Authorization: `Bearer ${t}` } });
      return (await r.json()).lanes.find((l) => l.lane === "old");
    }, token);
    assert.equal(queued.pending, 1);
    await unserved.locator("text=Discard").click();
    await page.click("#confirm-ok");
    await unserved.waitFor({ state: "detached" });
    // A removed account's targets never fanned out to its nodes: said, with no discard.
    const fanned = page.locator('#unserved [data-account="oldedge"]');
    assert.match(await fanned.textContent(), /1 target\(s\) wait to be fanned out/);
    assert.equal(await fanned.locator("text=Discard").count(), 0);

    // Delete asks first; cancelling keeps the rule.
    await row.locator("text=Delete").click();
    await page.click("#confirm-dialog button[value=cancel]");
    assert.equal(await row.count(), 1);
    await row.locator("text=Delete").click();
    await page.click("#confirm-ok");
    await row.waitFor({ state: "detached" });
    assert.equal(await inForce(), "1", "the deleted rule is no longer counted");

    assert.deepEqual(errors, [], "no script errors");
    assert.deepEqual(outside, [], "nothing fetched from elsewhere");
    console.log("console test passed");
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

// Drives the airlock dashboard in headless Chromium with JavaScript OFF
// (the dashboard must work without it): sign in with an auditor token, open
// a run, see its evidence timeline and verification badge, look at the
// governance charts, then sign in as an approver and approve the pending
// request. Before approving, the signed-in approver visits a page on
// another port of the same host ($ATTACKER: same site, other origin) whose
// form posts an approval to the dashboard; the dashboard must refuse it.
// Screenshots go to $ARTIFACTS. Exits non-zero on any failure.
//
// Env: BASE, AUDITOR_TOKEN, APPROVER_TOKEN, RUN_ID, APPROVAL_ID, ARTIFACTS, ATTACKER.
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`missing ${name}`);
  return value;
};
const base = env('BASE');
const artifacts = env('ARTIFACTS');

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const expect = (cond, what) => { if (!cond) throw new Error(`expected: ${what}`); };

try {
  const context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();

  const signIn = async (token) => {
    await page.goto(`${base}/runs`);
    expect(page.url().endsWith('/login'), `redirect to /login, got ${page.url()}`);
    await page.fill('input[name=token]', token);
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    expect(page.url().endsWith('/runs'), `signed in and on /runs, got ${page.url()}`);
  };

  // Auditor: runs list -> run detail with timeline and badge.
  await signIn(env('AUDITOR_TOKEN'));
  const runId = env('RUN_ID');
  const link = page.locator(`a[href="/runs/${runId}"]`);
  expect(await link.count() === 1, `run ${runId} listed`);
  await Promise.all([page.waitForNavigation(), link.click()]);
  const badge = await page.textContent('#verification');
  expect(badge.includes('verified'), `verification badge, got ${badge}`);
  const timeline = await page.textContent('#timeline');
  for (const kind of ['run.request', 'run.start', 'run.end']) {
    expect(timeline.includes(kind), `timeline shows ${kind}`);
  }
  await page.screenshot({ path: `${artifacts}/run.png`, fullPage: true });

  // Filters work as a plain GET form.
  await page.goto(`${base}/runs?status=ok`);
  expect(await page.locator(`a[href="/runs/${runId}"]`).count() === 1, 'status filter keeps the ok run');

  await page.goto(`${base}/governance`);
  expect(await page.locator('svg').count() >= 3, 'three SVG charts');
  expect((await page.textContent('#figures')).includes('Policy conformance'), 'figures table');
  await page.screenshot({ path: `${artifacts}/governance.png`, fullPage: true });

  // The auditor sees the request but has no approve button.
  const approvalId = env('APPROVAL_ID');
  await page.goto(`${base}/approvals`);
  expect(await page.locator(`#approval-${approvalId}`).count() === 1, 'auditor sees the request');
  expect(await page.locator(`#approval-${approvalId} button`).count() === 0, 'auditor cannot decide');
  await Promise.all([page.waitForNavigation(), page.click('header form button')]);

  // Approver: approve from the inbox.
  await signIn(env('APPROVER_TOKEN'));
  const cookies = await context.cookies(base);
  const session = cookies.find((c) => c.name === 'airlock_session');
  expect(session && session.httpOnly && session.sameSite === 'Strict', 'an HttpOnly, SameSite=Strict session cookie');
  expect(!session.value.includes(env('APPROVER_TOKEN')), 'the cookie holds a session id, not the API token');

  // The attack: a page on another port posts the approve form.
  await page.goto(`${env('ATTACKER')}/?target=${encodeURIComponent(`${base}/approvals/${approvalId}/decide`)}`);
  const [forged] = await Promise.all([page.waitForNavigation(), page.click('#bait')]);
  expect(forged.status() === 403, `the cross-origin approve is refused with 403, got ${forged.status()}`);
  expect((await page.textContent('main')).includes('state-changing requests must come from the dashboard'), 'the refusal names the rule');
  await page.goto(`${base}/approvals`);
  expect(await page.locator(`#approval-${approvalId} form`).count() === 1, 'the request is still waiting');
  await page.goto(`${base}/approvals`);
  const card = page.locator(`#approval-${approvalId}`);
  expect(await card.count() === 1, 'approver sees the request');
  await card.locator('textarea[name=reason]').fill('matches PO 4711 (dashboard)');
  await Promise.all([page.waitForNavigation(), card.locator('button[value=approve]').click()]);
  const after = await page.textContent('main');
  expect(after.includes(`Decided ${approvalId}`), `decision confirmed, got ${after.slice(0, 300)}`);
  await page.screenshot({ path: `${artifacts}/approvals.png`, fullPage: true });
  console.log(JSON.stringify({ ok: true, screenshots: ['run.png', 'governance.png', 'approvals.png'] }));
} finally {
  await browser.close();
}

import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { connect } from '@keel/client';
import { type BrokerProcess, stopAll, useTestDatabase } from '@keel/testkit';
import { type Browser, chromium, type Page } from 'playwright-core';
import { startNode } from './helpers/cluster';

/**
 * The web console (issue #24) in a real browser: Debian's chromium driven headless by
 * playwright-core, against a real master and slave on Postgres. Screenshots go to
 * KEEL_CONSOLE_SCREENSHOTS (docs/console to refresh the committed ones) or a temporary directory.
 */
const CHROMIUM = process.env.KEEL_CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = process.env.KEEL_CONSOLE_SCREENSHOTS ?? mkdtempSync(path.join(tmpdir(), 'keel-console-'));
const XSS_QUEUE = '<script>alert(1)</script>';
const XSS_BODY = '<img src=x onerror="window.__keelXss=1">';

describe('web console in a browser on a master and a slave', () => {
  const db = useTestDatabase();
  let master: BrokerProcess;
  let slave: BrokerProcess;
  let browser: Browser;
  const dialogs: string[] = [];

  beforeAll(async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(`no chromium at ${CHROMIUM} (apt-get install chromium; .ci/run does)`);
    mkdirSync(SHOTS, { recursive: true });
    const config = path.join(mkdtempSync(path.join(tmpdir(), 'keel-console-cfg-')), 'keel.yaml');
    writeFileSync(
      config,
      [
        'users:',
        '  - { name: ops, password: ops-secret, roles: [admin] }',
        '  - { name: viewer, password: view-secret, roles: [admin-read] }',
      ].join('\n'),
    );
    const args = ['--config', config];
    // A lease longer than the drills' 1.5 s: chromium and the nodes share a machine that may be busy
    // (beside stress-ng a master missed its 1.5-s lease and stepped down mid-test). The takeover
    // test kills the master, which frees the row lock at once whatever the lease.
    const env = { KEEL_LOCK_LEASE_MS: '10000', KEEL_LOCK_KEEP_ALIVE_MS: '1000' };
    master = await startNode({ db: db.url, cluster: 'con', name: 'con-a', args, env });
    await master.waitForRole('master', 30_000);
    slave = await startNode({ db: db.url, cluster: 'con', name: 'con-b', args, env });
    await slave.waitForRole('slave', 30_000);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  });
  afterAll(async () => {
    await browser?.close();
    await stopAll();
  });

  const url = (node: BrokerProcess, hash = '') => `http://127.0.0.1:${node.adminPort}/${hash}`;

  async function open(node: BrokerProcess, hash = ''): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1300, height: 900 } });
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(url(node, hash));
    await page.locator('.live.open').waitFor({ timeout: 15_000 });
    await page.locator('header .node').waitFor(); // the first snapshot is in
    expect(errors).toEqual([]);
    return page;
  }

  async function signIn(page: Page, user: string, password: string): Promise<void> {
    await page.click('#sign-in');
    await page.fill('input[name=user]', user);
    await page.fill('input[name=password]', password);
    await page.click('form.login button[type=submit]');
    await page.locator('#signed-in', { hasText: user }).waitFor();
  }

  const shot = (page: Page, name: string) =>
    page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

  it('shows master and slave on the cluster page; the slave says so and links to the master', async () => {
    const onMaster = await open(master);
    const nodes = onMaster.locator('#nodes tbody tr');
    await onMaster.locator('#nodes tr[data-row="con-b"]', { hasText: 'slave' }).waitFor();
    expect(await onMaster.locator('#nodes tr[data-row="con-a"]').textContent()).toContain('master');
    expect(await nodes.count()).toBe(2);
    expect(await onMaster.locator('#lock-holder').textContent()).toBe('con-a');
    expect(await onMaster.locator('#role-banner').count()).toBe(0);
    await onMaster.locator('#takeover-timeline li', { hasText: 'con-a' }).first().waitFor();
    await onMaster.locator('.chart canvas').waitFor(); // two ticks in: the chart has a line
    await shot(onMaster, 'cluster');

    const onSlave = await open(slave);
    const banner = onSlave.locator('#role-banner');
    await banner.waitFor();
    expect(await banner.textContent()).toMatch(/con-b, is the slave.*The master is con-a/s);
    expect(await onSlave.locator('#master-link').getAttribute('href')).toBe(`${url(master)}`);
    await onSlave.locator('#nodes tr[data-row="con-a"]', { hasText: 'master' }).waitFor();
    await onSlave.locator('.chart canvas').waitFor();
    await shot(onSlave, 'cluster-slave');
    await onMaster.close();
    await onSlave.close();
  });

  it('sends, browses and purges through the UI; a read-only user sees no buttons', async () => {
    const page = await open(master, '#/queue/console.orders');
    // Not signed in: nothing that changes state is offered.
    expect(await page.locator('form.send').count()).toBe(0);
    await signIn(page, 'ops', 'ops-secret');
    await page.locator('form.send').waitFor();
    await page.fill('form.send textarea[name=body]', 'hello from the console');
    await page.fill('form.send input[name=properties]', '{"region": "eu", "n": 7}');
    await page.click('form.send button[type=submit]');
    const card = page.locator('#messages article.message', { hasText: 'hello from the console' });
    await card.waitFor();
    expect(await card.textContent()).toContain('region="eu"');
    await page.locator('#queue-depth', { hasText: /^1$/ }).waitFor();
    // The queue list shows it too, live.
    await page.click('nav a[href="#/queues"]');
    await page.locator('#queues tr[data-row="console.orders"] svg.spark path').waitFor({ state: 'attached' }); // two ticks in
    await shot(page, 'queues');
    await page.click('#queues a.dest >> text=console.orders');
    await card.waitFor();
    await shot(page, 'queue');

    // Copy the message to another queue through its card; the original stays.
    await card.locator('input[aria-label="Target queue"]').fill('console.copies');
    await card.locator('button:has-text("Copy")').click();
    await page.locator('.notice.ok', { hasText: 'Copy' }).waitFor();
    const copies = await fetch(`http://127.0.0.1:${master.adminPort}/api/queues/console.copies/messages`);
    const copied = ((await copies.json()) as { messages: { bodyPreview: string }[] }).messages;
    expect(copied.map((m) => m.bodyPreview)).toEqual(['hello from the console']);
    await page.locator('#queue-depth', { hasText: /^1$/ }).waitFor();

    await page.click('button:has-text("Purge…")');
    await page.click('button:has-text("Purge now")');
    await page.locator('#queue-depth', { hasText: /^0$/ }).waitFor();
    await page.getByText('No pending messages.').waitFor();
    const api = await fetch(`http://127.0.0.1:${master.adminPort}/api/queues/console.orders`);
    expect(((await api.json()) as { depth: number }).depth).toBe(0);

    const viewer = await open(master, '#/queue/console.orders');
    await signIn(viewer, 'viewer', 'view-secret');
    await viewer.getByText('Signed in read-only').waitFor();
    expect(await viewer.locator('form.send').count()).toBe(0);
    expect(await viewer.locator('button:has-text("Purge")').count()).toBe(0);
    await page.close();
    await viewer.close();
  });

  it('renders a queue named <script>alert(1)</script> and an HTML body as text', async () => {
    const auth = `Basic ${Buffer.from('ops:ops-secret').toString('base64')}`;
    const res = await fetch(
      `http://127.0.0.1:${master.adminPort}/api/queues/${encodeURIComponent(XSS_QUEUE)}/messages`,
      {
        method: 'POST',
        headers: { authorization: auth, 'content-type': 'application/json' },
        body: JSON.stringify({ body: XSS_BODY }),
      },
    );
    expect(res.status).toBe(201);
    const page = await open(master, '#/queues');
    const link = page.locator('#queues a.dest', { hasText: XSS_QUEUE });
    await link.waitFor();
    expect(await link.textContent()).toBe(XSS_QUEUE);
    await link.click();
    const body = page.locator('#messages pre.body');
    await body.waitFor();
    expect(await body.textContent()).toBe(XSS_BODY);
    expect(await page.locator('h1.dest-name').textContent()).toBe(XSS_QUEUE);
    expect(await page.locator('main script, main img').count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as { __keelXss?: number }).__keelXss)).toBeUndefined();
    expect(dialogs).toEqual([]);
    await shot(page, 'escaping');
    await page.close();
  });

  it('shows connections, topics, bridges and the store', async () => {
    // A real client with a consumer, so that the page has something to show.
    const client = await connect(`tcp://127.0.0.1:${master.port}`, {
      username: 'ops',
      password: 'ops-secret',
    });
    const session = await client.createSession();
    await session.createConsumer('queue://console.work');
    const page = await open(master, '#/connections');
    await page.locator('#connections tbody tr', { hasText: 'native' }).waitFor();
    await page.locator('#consumers tbody tr', { hasText: 'queue://console.work' }).waitFor();
    await shot(page, 'connections');
    await page.click('nav a[href="#/topics"]');
    await page.locator('#topics').waitFor();
    await shot(page, 'topics');
    await page.click('nav a[href="#/bridges"]');
    await page.locator('#bridges').waitFor();
    await shot(page, 'bridges');
    await page.click('nav a[href="#/store"]');
    await page.locator('#store-tables tr', { hasText: 'keel_messages' }).waitFor({ timeout: 15_000 });
    expect(await page.locator('#pools tr[data-row="store"]').count()).toBe(1);
    await shot(page, 'store');
    await page.close();
    await client.close();
  });

  it('shows the takeover on the slave’s timeline after the master is killed', async () => {
    const page = await open(slave);
    await page.locator('#takeover-timeline li').first().waitFor();
    const before = await page.locator('#takeover-timeline li').count();
    const epoch = Number(await page.locator('#takeover-timeline li').first().getAttribute('data-epoch'));
    master.kill('SIGKILL');
    await slave.waitForRole('master', 30_000);
    const newest = page.locator(`#takeover-timeline li[data-epoch="${epoch + 1}"]`, { hasText: 'con-b' });
    await newest.waitFor({ timeout: 15_000 });
    expect(await newest.textContent()).toContain('took over from con-a');
    expect(await page.locator('#takeover-timeline li').count()).toBe(before + 1);
    await page.locator('#lock-holder', { hasText: 'con-b' }).waitFor();
    await page.locator('#role-banner').waitFor({ state: 'detached' });
    await shot(page, 'takeover');
    await page.close();
  });
});

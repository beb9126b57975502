// fleetgate dashboard: a page of the admin listener that reads the admin API
// (/v1/...) with its session cookie. Everything from the server is put into
// the page as text (never as HTML).
'use strict';

(function () {
  const main = document.getElementById('main');
  const nav = document.getElementById('nav');
  let csrf = null;

  /** Builds an element: el('a', { href: '#' }, 'text', child, ...). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else if (value !== undefined && value !== null && value !== false)
        node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function table(headers, rows) {
    return el(
      'table',
      {},
      el('thead', {}, el('tr', {}, ...headers.map((h) => el('th', {}, h)))),
      el('tbody', {}, ...rows.map((cells) => el('tr', {}, ...cells.map((c) => el('td', {}, c))))),
    );
  }

  const when = (iso) => (iso ? new Date(iso).toISOString().replace('.000Z', 'Z') : '-');

  /** A device's last published state (MQTT), as text: its status and when. */
  const lastStateText = (s) => (s ? `${s.status} (${when(s.at)})` : '-');

  /** The other fields of the last state, as JSON text in a <code> (never parsed as HTML). */
  function lastStateFields(s) {
    if (!s) return '-';
    const fields = { ...s.state };
    delete fields.status;
    return Object.keys(fields).length === 0
      ? '-'
      : el('code', { id: 'device-state-fields' }, JSON.stringify(fields));
  }
  const enc = encodeURIComponent;

  class ApiError extends Error {
    constructor(status, body) {
      super(body && body.code ? `${body.code}: ${body.error}` : `HTTP ${status}`);
      this.status = status;
    }
  }

  async function api(method, url, body) {
    const headers = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (method !== 'GET' && csrf) headers['x-csrf-token'] = csrf;
    const res = await fetch(url, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    const data = text ? JSON.parse(text) : null;
    if (res.status === 401 && url !== '/dashboard/session') {
      csrf = null;
      showSignIn('Your session ended; sign in again.');
      throw new ApiError(res.status, data);
    }
    if (!res.ok) throw new ApiError(res.status, data);
    return data;
  }

  function show(...nodes) {
    main.replaceChildren(...nodes);
  }

  function showSignIn(message) {
    nav.hidden = true;
    const input = el('input', {
      id: 'token',
      type: 'password',
      autocomplete: 'off',
      placeholder: 'admin token',
      size: 50,
    });
    const error = el('p', { class: 'error', id: 'signin-error' }, message || '');
    const form = el(
      'form',
      {
        id: 'signin',
        onsubmit: async (event) => {
          event.preventDefault();
          try {
            const answer = await api('POST', '/dashboard/session', { token: input.value });
            csrf = answer.csrf;
            input.value = '';
            route();
          } catch (err) {
            error.textContent = err.status === 401 ? 'That is not the admin token.' : err.message;
          }
        },
      },
      el('h1', {}, 'Sign in'),
      el(
        'p',
        {},
        'Paste the admin token (FLEETGATE_ADMIN_TOKEN, or the one printed at first start).',
      ),
      input,
      ' ',
      el('button', { type: 'submit' }, 'Sign in'),
      error,
    );
    show(form);
    input.focus();
  }

  // ---- pages --------------------------------------------------------------

  async function identitiesPage() {
    const { identities } = await api('GET', '/v1/identities');
    show(
      el('h1', {}, 'Identities'),
      table(
        ['name', 'status', 'devices', 'PSKs', 'owner confirmation', 'created'],
        identities.map((i) => [
          el('a', { href: `#/identities/${enc(i.name)}/devices` }, i.name),
          i.status,
          el('a', { href: `#/identities/${enc(i.name)}/devices` }, 'devices'),
          el('a', { href: `#/identities/${enc(i.name)}/psks` }, `${i.psks} PSK(s)`),
          i.requireConfirmation
            ? el('a', { href: `#/identities/${enc(i.name)}/registrations` }, 'registrations')
            : 'off',
          when(i.createdAt),
        ]),
      ),
    );
  }

  /** One identity's devices, or (name null) every device of the fleet; paginated by the server. */
  async function devicesPage(name, params) {
    const cursor = params.get('cursor');
    const status = params.get('status');
    const query = new URLSearchParams({ limit: params.get('limit') || '50' });
    if (cursor) query.set('cursor', cursor);
    if (status && !name) query.set('status', status);
    const base = name ? `#/identities/${enc(name)}/devices` : '#/devices';
    const page = await api(
      'GET',
      name ? `/v1/identities/${enc(name)}/devices?${query}` : `/v1/devices?${query}`,
    );
    const next = new URLSearchParams(query);
    if (page.nextCursor) next.set('cursor', page.nextCursor);
    const first = new URLSearchParams(query);
    first.delete('cursor');
    show(
      el('h1', {}, name ? `Devices of ${name}` : 'All devices'),
      name
        ? el('p', {}, el('a', { href: `#/identities/${enc(name)}/psks` }, 'PSKs of this identity'))
        : el(
            'p',
            { id: 'status-filter' },
            'Show: ',
            el('a', { href: '#/devices' }, 'all'),
            ' ',
            el('a', { href: '#/devices?status=active' }, 'active'),
            ' ',
            el('a', { href: '#/devices?status=revoked' }, 'revoked'),
          ),
      table(
        [
          ...(name ? [] : ['identity']),
          'certificate',
          'status',
          'last seen',
          'last state',
          'bound',
          'revoked',
        ],
        page.devices.map((d) => {
          const fp = d.certificate ? d.certificate.fingerprint : null;
          return [
            ...(name
              ? []
              : [el('a', { href: `#/identities/${enc(d.identity)}/devices` }, d.identity)]),
            fp ? el('a', { href: `#/devices/${fp}`, class: 'device' }, el('code', {}, fp)) : '-',
            d.status,
            when(d.lastSeenAt),
            el('span', { class: 'last-state' }, lastStateText(d.lastState)),
            when(d.boundAt),
            d.revokedAt ? `${when(d.revokedAt)} ${d.revokedReason || ''}` : '-',
          ];
        }),
      ),
      el(
        'p',
        {},
        cursor ? el('a', { href: `${base}?${first}` }, 'first page') : null,
        ' ',
        page.nextCursor ? el('a', { href: `${base}?${next}`, id: 'next' }, 'next page') : null,
      ),
    );
  }

  async function devicePage(fingerprint) {
    const device = await api('GET', `/v1/devices/${enc(fingerprint)}`);
    const { series } = await api('GET', `/v1/devices/${enc(fingerprint)}/series?limit=200`);
    const plotBox = el('div', { id: 'plot' });
    const plotInfo = el('p', { id: 'plot-info' });
    const reason = el('input', {
      id: 'revoke-reason',
      placeholder: 'reason (kept in the audit log)',
    });
    const revokeError = el('p', { class: 'error' });
    const revoke =
      device.status === 'revoked'
        ? null
        : el(
            'form',
            {
              id: 'revoke',
              onsubmit: async (event) => {
                event.preventDefault();
                try {
                  const body = reason.value ? { reason: reason.value } : undefined;
                  await api('POST', `/v1/devices/${enc(fingerprint)}/revoke`, body);
                  route();
                } catch (err) {
                  revokeError.textContent = err.message;
                }
              },
            },
            reason,
            ' ',
            el('button', { type: 'submit' }, 'Revoke this device'),
            revokeError,
          );
    show(
      el('h1', {}, 'Device'),
      table(
        ['', ''],
        [
          [
            'identity',
            el('a', { href: `#/identities/${enc(device.identity)}/devices` }, device.identity),
          ],
          ['status', el('span', { id: 'device-status' }, device.status)],
          [
            'certificate',
            el('code', {}, device.certificate ? device.certificate.fingerprint : '-'),
          ],
          ['subject', device.certificate ? device.certificate.subject : '-'],
          [
            'bound',
            `${when(device.boundAt)} from ${device.boundFrom || '-'} (PSK ${device.pskId})`,
          ],
          ['last seen', el('span', { id: 'device-last-seen' }, when(device.lastSeenAt))],
          ['last state', el('span', { id: 'device-state' }, lastStateText(device.lastState))],
          [
            'state fields',
            el('span', { id: 'device-state-box' }, lastStateFields(device.lastState)),
          ],
          [
            'revoked',
            device.revokedAt ? `${when(device.revokedAt)} ${device.revokedReason || ''}` : '-',
          ],
        ],
      ),
      revoke,
      el('h2', {}, 'Series'),
      table(
        ['name', 'points', 'first', 'last'],
        series.map((s) => [
          el(
            'a',
            {
              href: '#',
              class: 'series',
              onclick: (event) => {
                event.preventDefault();
                plot(fingerprint, s, plotBox, plotInfo);
              },
            },
            s.name,
          ),
          s.points,
          when(s.first),
          when(s.last),
        ]),
      ),
      plotInfo,
      plotBox,
    );
    const first = series.find((s) => s.points > 0);
    if (first) await plot(fingerprint, first, plotBox, plotInfo);
  }

  /**
   * Refreshes the live cells of a device's page (status, last seen, last state)
   * in place, so the plot and a half-typed revocation reason stay as they are.
   */
  async function refreshDevice(fingerprint) {
    const device = await api('GET', `/v1/devices/${enc(fingerprint)}`);
    const cell = (id) => document.getElementById(id);
    if (!cell('device-state')) return;
    cell('device-status').textContent = device.status;
    cell('device-last-seen').textContent = when(device.lastSeenAt);
    cell('device-state').textContent = lastStateText(device.lastState);
    cell('device-state-box').replaceChildren(lastStateFields(device.lastState));
  }

  /** Target: about this many buckets across the visible range. */
  const BUCKETS = 400;

  /** Buckets for [fromMs, toMs): whole seconds, at least 1 s. */
  function bucketFor(fromMs, toMs) {
    return Math.max(1, Math.ceil((toMs - fromMs) / 1000 / BUCKETS));
  }

  async function loadBuckets(fingerprint, name, fromMs, toMs) {
    const bucketS = bucketFor(fromMs, toMs);
    const query = new URLSearchParams({
      series: name,
      from: String(fromMs),
      to: String(toMs),
      bucket: `${bucketS}s`,
      limit: '1000',
    });
    const page = await api('GET', `/v1/devices/${enc(fingerprint)}/points?${query}`);
    const xs = page.buckets.map((b) => b.t / 1000);
    return {
      bucketS,
      data: [
        xs,
        page.buckets.map((b) => b.avg),
        page.buckets.map((b) => b.min),
        page.buckets.map((b) => b.max),
      ],
    };
  }

  async function plot(fingerprint, series, box, info) {
    if (typeof uPlot !== 'function') throw new Error('uPlot did not load');
    const fromMs = series.firstEpochMs;
    const toMs = series.lastEpochMs + 1;
    const loaded = await loadBuckets(fingerprint, series.name, fromMs, toMs);
    const describe = (l) => {
      info.textContent = `${series.name}: ${l.data[0].length} buckets of ${l.bucketS} s (drag to zoom in, double-click to zoom out)`;
      box.setAttribute('data-series', series.name);
      box.setAttribute('data-points', String(l.data[0].length));
      box.setAttribute('data-bucket-s', String(l.bucketS));
    };
    describe(loaded);
    box.replaceChildren();
    let zooming = false;
    const chart = new uPlot(
      {
        width: Math.min(1000, document.body.clientWidth - 40),
        height: 320,
        series: [
          {},
          { label: 'avg', stroke: '#1d3557', width: 2, points: { show: true, size: 4 } },
          { label: 'min', stroke: '#a8dadc' },
          { label: 'max', stroke: '#e63946' },
        ],
        hooks: {
          setSelect: [
            async (u) => {
              if (u.select.width < 2 || zooming) return;
              const from = Math.floor(u.posToVal(u.select.left, 'x') * 1000);
              const to = Math.ceil(u.posToVal(u.select.left + u.select.width, 'x') * 1000);
              u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
              zooming = true;
              try {
                const finer = await loadBuckets(fingerprint, series.name, from, to);
                describe(finer);
                u.setData(finer.data);
              } finally {
                zooming = false;
              }
            },
          ],
        },
        cursor: { drag: { setScale: false, x: true, y: false } },
      },
      loaded.data,
      box,
    );
    box.addEventListener('dblclick', () => {
      describe(loaded);
      chart.setData(loaded.data);
    });
    return chart;
  }

  async function pskPage(name) {
    const { psks } = await api('GET', `/v1/identities/${enc(name)}/psks`);
    const maxDevices = el('input', {
      id: 'psk-max',
      type: 'number',
      min: 1,
      placeholder: 'max devices',
    });
    const expiresIn = el('input', { id: 'psk-expires', placeholder: 'expires in (30d)' });
    const singleUse = el('input', { id: 'psk-single', type: 'checkbox' });
    const issued = el('div', { id: 'issued' });
    show(
      el('h1', {}, `PSKs of ${name}`),
      issued,
      el(
        'form',
        {
          id: 'issue-psk',
          onsubmit: async (event) => {
            event.preventDefault();
            const body = {};
            if (maxDevices.value) body.maxDevices = Number(maxDevices.value);
            if (expiresIn.value) body.expiresIn = expiresIn.value;
            if (singleUse.checked) body.singleUse = true;
            try {
              const answer = await api('POST', `/v1/identities/${enc(name)}/psks`, body);
              await pskPage(name);
              document
                .getElementById('issued')
                .replaceChildren(
                  el('p', {}, 'New PSK: copy it now, it is never shown again.'),
                  el('p', { class: 'secret', id: 'psk-secret' }, answer.secret),
                );
            } catch (err) {
              issued.replaceChildren(el('p', { class: 'error' }, err.message));
            }
          },
        },
        maxDevices,
        ' ',
        expiresIn,
        ' ',
        el('label', {}, singleUse, ' single use'),
        ' ',
        el('button', { type: 'submit' }, 'Issue a PSK'),
      ),
      table(
        ['id', 'status', 'max devices', 'single use', 'created', 'expires', ''],
        psks.map((p) => [
          p.id,
          p.status,
          p.maxDevices === null ? '-' : p.maxDevices,
          p.singleUse ? 'yes' : 'no',
          when(p.createdAt),
          when(p.expiresAt),
          p.status === 'active'
            ? el(
                'button',
                {
                  class: 'revoke-psk',
                  'data-id': p.id,
                  onclick: async () => {
                    await api('POST', `/v1/psks/${p.id}/revoke`);
                    await pskPage(name);
                  },
                },
                'revoke',
              )
            : '',
        ]),
      ),
    );
  }

  /** Pending registration requests, and the owner's confirmation with PIN and serial digits. */
  async function registrationsPage(name, message) {
    const { registrations } = await api('GET', `/v1/identities/${enc(name)}/registrations`);
    const pin = el('input', { id: 'reg-pin', placeholder: 'PIN (8 characters)', maxlength: 16 });
    const serial = el('input', {
      id: 'reg-serial',
      placeholder: 'last 4 digits of the serial',
      maxlength: 4,
    });
    const outcome = el('div', { id: 'reg-outcome' }, message ? el('p', {}, message) : null);
    show(
      el('h1', {}, `Registrations of ${name}`),
      el(
        'p',
        {},
        "Enter the PIN the device shows and the last 4 hex digits of its certificate's serial number.",
      ),
      outcome,
      el(
        'form',
        {
          id: 'confirm-registration',
          onsubmit: async (event) => {
            event.preventDefault();
            try {
              const confirmed = await api(
                'POST',
                `/v1/identities/${enc(name)}/registrations/confirm`,
                { pin: pin.value, serialLast4: serial.value },
              );
              await registrationsPage(
                name,
                `Confirmed request ${confirmed.rid}: the device completes its registration now.`,
              );
            } catch (err) {
              outcome.replaceChildren(el('p', { class: 'error', id: 'reg-error' }, err.message));
            }
          },
        },
        pin,
        ' ',
        serial,
        ' ',
        el('button', { type: 'submit' }, 'Confirm'),
      ),
      registrations.length === 0
        ? el('p', { id: 'no-registrations' }, 'No pending requests.')
        : table(
            ['request', 'status', 'device', 'from', 'requested', 'expires', 'wrong attempts'],
            registrations.map((r) => [
              el('code', {}, r.rid),
              r.status,
              el('a', { href: `#/devices/${r.fingerprint}` }, r.fingerprint.slice(0, 16)),
              r.requestedFrom || '-',
              when(r.requestedAt),
              when(new Date(r.expiresOn).toISOString()),
              r.failedAttempts,
            ]),
          ),
    );
  }

  async function auditPage(params) {
    const query = new URLSearchParams({ limit: '100' });
    for (const key of ['identity', 'fingerprint', 'action', 'cursor']) {
      if (params.get(key)) query.set(key, params.get(key));
    }
    const page = await api('GET', `/v1/audit?${query}`);
    const field = (key, placeholder) =>
      el('input', { name: key, id: `audit-${key}`, placeholder, value: params.get(key) || '' });
    const filters = ['identity', 'fingerprint', 'action'].map((k) => field(k, k));
    const next = new URLSearchParams(query);
    if (page.nextCursor) next.set('cursor', page.nextCursor);
    show(
      el('h1', {}, 'Audit log'),
      el(
        'form',
        {
          id: 'audit-filter',
          onsubmit: (event) => {
            event.preventDefault();
            const q = new URLSearchParams();
            for (const input of filters) if (input.value) q.set(input.name, input.value);
            location.hash = `#/audit?${q}`;
          },
        },
        ...filters.flatMap((f) => [f, ' ']),
        el('button', { type: 'submit' }, 'Filter'),
      ),
      table(
        ['at', 'action', 'actor', 'identity', 'device', 'details'],
        page.events.map((e) => [
          when(e.at),
          el('span', { class: 'action' }, e.action),
          e.actor,
          e.identity || '-',
          e.fingerprint
            ? el('a', { href: `#/devices/${e.fingerprint}` }, e.fingerprint.slice(0, 16))
            : '-',
          el('code', {}, JSON.stringify(e.details)),
        ]),
      ),
      page.nextCursor ? el('a', { href: `#/audit?${next}`, id: 'next' }, 'older') : null,
    );
  }

  // ---- routing -------------------------------------------------------------

  /**
   * Pages render one after another, in the order asked: a slow page (a list
   * refreshing itself, a device page still fetching) never replaces the page
   * of a later navigation, and each render reads the hash when its turn comes.
   */
  let routing = Promise.resolve();
  function route() {
    routing = routing.then(renderRoute, renderRoute);
    return routing;
  }

  async function renderRoute() {
    if (!csrf) {
      try {
        csrf = (await api('GET', '/dashboard/session')).csrf;
      } catch {
        return showSignIn();
      }
    }
    nav.hidden = false;
    const hash = location.hash;
    const [path, search] = (hash.slice(1) || '/identities').split('?');
    const params = new URLSearchParams(search || '');
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    try {
      if (parts[0] === 'identities' && parts.length === 1) await identitiesPage();
      else if (parts[0] === 'identities' && parts[2] === 'devices')
        await devicesPage(parts[1], params);
      else if (parts[0] === 'identities' && parts[2] === 'psks') await pskPage(parts[1]);
      else if (parts[0] === 'identities' && parts[2] === 'registrations')
        await registrationsPage(parts[1]);
      else if (parts[0] === 'devices' && parts.length === 1) await devicesPage(null, params);
      else if (parts[0] === 'devices') await devicePage(parts[1]);
      else if (parts[0] === 'audit') await auditPage(params);
      else show(el('p', {}, 'No such page.'));
    } catch (err) {
      if (err.status !== 401) show(el('p', { class: 'error', id: 'page-error' }, err.message));
    }
    // Which navigation the page on screen answers (what a test or a script waits for).
    main.dataset.route = hash;
  }

  document.getElementById('signout').addEventListener('click', async () => {
    await api('POST', '/dashboard/signout').catch(() => undefined);
    csrf = null;
    showSignIn('Signed out.');
  });
  window.addEventListener('hashchange', route);
  route();

  // Lists refresh themselves, so the dashboard fills while devices bind and
  // upload; never while the operator is typing into a form, nor in a hidden tab.
  // A device's page refreshes its status, last seen and last state in place.
  const REFRESH_MS = 5000;
  window.setInterval(() => {
    if (!csrf || document.visibilityState !== 'visible') return;
    const path = (location.hash.slice(1) || '/identities').split('?')[0];
    const parts = path.split('/').filter(Boolean);
    const list =
      (parts[0] === 'identities' && (parts.length === 1 || parts[2] === 'devices')) ||
      (parts[0] === 'devices' && parts.length === 1) ||
      parts[0] === 'audit';
    const typing =
      document.activeElement && /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement.tagName);
    if (list && !typing) route();
    else if (parts[0] === 'devices' && parts.length === 2)
      refreshDevice(decodeURIComponent(parts[1])).catch(() => undefined);
  }, REFRESH_MS);
})();

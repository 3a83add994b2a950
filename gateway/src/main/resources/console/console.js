// Herald console: plain JavaScript, no build step. Every view calls the /v1 API with the signed-in
// key in the Authorization header (sessionStorage only: never a cookie, never a URL) and shows
// what the key's roles allow. Text from the API is set with textContent only (no innerHTML).
'use strict';
(function () {
  const KEY = 'herald.key';
  const S = {key: null, me: null, timers: [], charts: []};

  // ---- DOM helpers --------------------------------------------------------------------------
  function h(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'value') e.value = v;
      else e.setAttribute(k, v === true ? '' : v);
    }
    return append(e, kids);
  }
  // Appends children: nodes, text, nested lists of them; null and false are skipped.
  function append(e, kids) {
    for (const c of kids.flat(Infinity)) {
      if (c == null || c === false) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }
  function fill(e, ...kids) {
    e.replaceChildren();
    return append(e, kids);
  }
  const $ = (sel, root) => (root || document).querySelector(sel);
  const fmt = n => (n == null ? '-' : typeof n === 'number' ? n.toLocaleString('en-US') : String(n));
  const pct = r => (r == null || isNaN(r) ? '-' : (r * 100).toFixed(r < 0.1 ? 2 : 1) + '%');
  const when = t => (t == null ? '-' : new Date(typeof t === 'number' ? t : Date.parse(t)).toISOString().replace('T', ' ').slice(0, 19) + 'Z');
  const can = role => !!(S.me && S.me.roles.includes(role));
  const app = () => encodeURIComponent(S.me.app);
  const enc = encodeURIComponent;

  // ---- the API ------------------------------------------------------------------------------
  async function api(method, path, body, headers) {
    const init = {method, headers: Object.assign({'Authorization': 'Bearer ' + S.key}, headers || {}),
      credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer'};
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      return {status: 0, json: {error: {code: 'network', message: 'the gateway did not answer: ' + e.message}}, headers: new Headers()};
    }
    let json = {};
    const text = await res.text();
    if (text) {
      try { json = JSON.parse(text); } catch (e) { json = {text}; }
    }
    if (res.status === 401 && S.me) {
      signOut('The key was refused (revoked?). Sign in again.');
    }
    return {status: res.status, ok: res.ok, json, headers: res.headers};
  }

  // An error box for an API answer: "status code: message", the field, and a caret under the
  // column for rule and template syntax errors (given the source text).
  function errorBox(res, source) {
    const err = res.json && res.json.error ? res.json.error : {code: 'http_' + res.status, message: JSON.stringify(res.json)};
    const box = h('div', {class: 'error', role: 'alert', 'data-code': err.code},
      res.status + ' ' + err.code + ': ' + err.message);
    const m = /column (\d+)/.exec(err.message || '');
    if (m && source != null) {
      const col = parseInt(m[1], 10);
      const lines = String(source).split('\n');
      const lm = /line (\d+)/.exec(err.message);
      const line = lines[(lm ? parseInt(lm[1], 10) : 1) - 1] || '';
      box.append(h('pre', {class: 'caret'}, line + '\n' + ' '.repeat(Math.max(0, col - 1)) + '^'));
    }
    return box;
  }

  function every(ms, fn) {
    const t = setInterval(fn, ms);
    S.timers.push(t);
  }

  function chart(el, title, xs, series) {
    const width = Math.max(320, el.clientWidth || 800);
    const u = new uPlot({title, width, height: 220, scales: {x: {time: true}},
      series: [{}].concat(series.map((s, i) => ({label: s.label, stroke: ['#3a6fd8', '#3a9d5a', '#d88a3a', '#8a3ad8', '#c23b3b'][i % 5], width: 2})))},
      [xs].concat(series.map(s => s.data)), el);
    S.charts.push(u);
    return u;
  }

  function barChart(el, title, labels, values) {
    const xs = labels.map((_, i) => i);
    const u = new uPlot({title, width: Math.max(320, el.clientWidth || 600), height: 200,
      scales: {x: {time: false, range: [-0.5, labels.length - 0.5]}},
      axes: [{values: (u, ticks) => ticks.map(t => labels[t] != null ? labels[t] : '')}, {}],
      series: [{}, {label: title, stroke: '#3a6fd8', fill: 'rgba(58,111,216,.35)', paths: uPlot.paths.bars({size: [0.7, 40]}), points: {show: false}}]},
      [xs, values], el);
    S.charts.push(u);
    return u;
  }

  function funnelBars(counts, keys) {
    const max = Math.max(1, ...keys.map(k => counts[k] || 0));
    return h('div', {class: 'bars'}, keys.map(k => {
      const fill = h('div', {class: 'fill'});
      fill.style.width = Math.round(300 * (counts[k] || 0) / max) + 'px';
      return h('div', {class: 'bar', 'data-step': k}, h('span', {class: 'name'}, k), fill, h('span', {class: 'v'}, fmt(counts[k] || 0)));
    }));
  }

  function table(headers, rows, onRow) {
    return h('table', {}, h('thead', {}, h('tr', {}, headers.map(c => h('th', {class: c.num ? 'num' : null}, c.label || c)))),
      h('tbody', {}, rows.map(r => {
        const tr = h('tr', {class: onRow ? 'clickable' : null, onclick: onRow ? () => onRow(r) : null});
        headers.forEach(c => {
          const v = c.get ? c.get(r) : r[c];
          tr.append(h('td', {class: c.num ? 'num' : null}, v instanceof Node ? v : fmt(v)));
        });
        return tr;
      })));
  }

  function reasons(counts, prefix) {
    return Object.entries(counts || {}).filter(([k, v]) => k.startsWith(prefix) && v > 0)
      .map(([k, v]) => ({reason: k.slice(prefix.length), count: v}));
  }

  // ---- sign-in and routing ------------------------------------------------------------------
  async function signIn(key) {
    S.key = key;
    const res = await api('GET', '/v1/key');
    if (!res.ok) {
      S.key = null;
      return res;
    }
    S.me = res.json;
    sessionStorage.setItem(KEY, key);
    $('#who').textContent = S.me.app + ' · key ' + S.me.id + ' (' + S.me.roles.join(', ') + ')';
    document.querySelectorAll('#nav a[data-role]').forEach(a => { a.hidden = !can(a.dataset.role); });
    $('#nav').hidden = false;
    $('#sign-out').hidden = false;
    return res;
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY);
    S.key = null;
    S.me = null;
    $('#nav').hidden = true;
    $('#sign-out').hidden = true;
    $('#who').textContent = '';
    showSignIn(message);
  }

  function showSignIn(message) {
    clear();
    const input = h('input', {type: 'password', id: 'api-key', autocomplete: 'off', placeholder: 'hk_...'});
    const out = h('div', {id: 'sign-in-result'});
    const form = h('form', {id: 'sign-in', onsubmit: async ev => {
      ev.preventDefault();
      out.replaceChildren();
      const res = await signIn(input.value.trim());
      if (!res.ok) {
        out.append(errorBox(res));
      } else {
        if (!location.hash || location.hash === '#/') location.hash = '#/overview';
        route();
      }
    }}, h('h1', {}, 'Sign in'), message ? h('div', {class: 'warn'}, message) : null,
      h('label', {for: 'api-key'}, 'API key of the app'), input,
      h('p', {class: 'muted'}, 'The key stays in this tab (sessionStorage) and is sent only in the Authorization header of API calls.'),
      h('button', {type: 'submit', id: 'sign-in-button'}, 'Sign in'), out);
    $('#main').append(h('section', {class: 'card signin'}, form));
    input.focus();
  }

  function clear() {
    S.timers.forEach(clearInterval);
    S.timers = [];
    S.charts.forEach(c => c.destroy());
    S.charts = [];
    $('#main').replaceChildren();
  }

  const VIEWS = {};

  function route() {
    if (!S.me) {
      showSignIn();
      return;
    }
    const parts = (location.hash || '#/overview').slice(2).split('/').map(decodeURIComponent);
    const view = VIEWS[parts[0]] ? parts[0] : 'overview';
    document.querySelectorAll('#nav a').forEach(a => a.classList.toggle('active', a.dataset.view === view));
    clear();
    const main = $('#main');
    VIEWS[view](main, parts.slice(1)).catch(e => main.append(h('div', {class: 'error'}, 'console error: ' + e.message)));
  }

  // ---- overview -----------------------------------------------------------------------------
  VIEWS.overview = async function (main) {
    main.append(h('h1', {}, 'Overview of ' + S.me.app));
    if (!can('read')) {
      main.append(h('div', {class: 'warn'}, 'This key has no read role: the overview needs it.'));
      return;
    }
    const tiles = h('div', {class: 'tiles', id: 'today'});
    const chartEl = h('div', {class: 'chart', id: 'minute-chart'});
    const errs = h('div', {id: 'errors'});
    main.append(h('section', {class: 'card'}, h('h2', {}, 'Today (UTC)'), tiles),
      h('section', {class: 'card'}, h('h2', {}, 'The last hour, per minute'), chartEl),
      h('section', {class: 'card'}, h('h2', {}, 'Failed and dropped by reason, today (UTC)'), errs));
    let plot = null;
    async function load() {
      const midnight = new Date();
      midnight.setUTCHours(0, 0, 0, 0);
      const [day, min] = await Promise.all([
        api('GET', '/v1/stats?bucket=day&from=' + midnight.getTime()),
        api('GET', '/v1/stats?bucket=minute&from=' + (Date.now() - 3600_000))]);
      if (!day.ok) { fill(tiles, errorBox(day)); return; }
      const t = {};
      day.json.buckets.forEach(b => Object.entries(b.counts).forEach(([k, v]) => { t[k] = (t[k] || 0) + v; }));
      const buckets = min.ok ? min.json.buckets : [];
      const last = buckets.length > 1 ? buckets[buckets.length - 2].counts.submitted : 0;
      fill(tiles, ...[['sent', t.submitted], ['accepted', t.accepted], ['delivered', t.delivered],
        ['opened', t.opened], ['clicked', t.clicked], ['failed', t.failed], ['live rate (/min)', last]]
        .map(([l, n]) => h('div', {class: 'tile', 'data-tile': l}, h('div', {class: 'n'}, fmt(n || 0)), h('div', {class: 'l'}, l))));
      const xs = buckets.map(b => b.start / 1000);
      const data = ['submitted', 'accepted', 'delivered', 'opened'].map(k => ({label: k, data: buckets.map(b => b.counts[k] || 0)}));
      if (plot) { plot.setData([xs].concat(data.map(d => d.data))); } else if (xs.length) { plot = chart(chartEl, 'messages per minute', xs, data); }
      const rows = reasons(t, 'failed:').map(r => ({...r, kind: 'failed'}))
        .concat(reasons(t, 'dropped:').map(r => ({...r, kind: 'dropped'})));
      fill(errs, rows.length ? table([{label: 'outcome', get: r => r.kind}, 'reason', {label: 'count', num: true, get: r => r.count}], rows)
        : h('p', {class: 'muted'}, 'None.'));
    }
    await load();
    every(5000, load);
  };

  // ---- audiences ----------------------------------------------------------------------------
  VIEWS.audiences = async function (main) {
    main.append(h('h1', {}, 'Audiences'));
    const rule = h('textarea', {id: 'rule', spellcheck: 'false', placeholder: 'tag:vip AND event.purchase.count(30d) >= 2'});
    const estimate = h('div', {id: 'estimate'}, h('p', {class: 'muted'}, 'Type a rule to see how many users it picks.'));
    const name = h('input', {type: 'text', id: 'audience-name', placeholder: 'name'});
    const saveOut = h('div');
    let seq = 0;
    let timer = null;
    async function estimateNow() {
      const mine = ++seq;
      const text = rule.value;
      if (!text.trim()) { fill(estimate, h('p', {class: 'muted'}, 'Type a rule to see how many users it picks.')); return; }
      const res = await api('POST', '/v1/apps/' + app() + '/audiences/estimate', {rule: text});
      if (mine !== seq) return;
      if (!res.ok) { fill(estimate, errorBox(res, text)); return; }
      fill(estimate, h('div', {class: 'tile'}, h('div', {class: 'n', id: 'estimate-count'}, fmt(res.json.count)), h('div', {class: 'l'}, 'users')),
        h('p', {class: 'muted'}, 'computed in ' + res.json.computedInMs + ' ms · sample: '),
        h('div', {class: 'chips', id: 'estimate-sample'}, (res.json.sample || []).map(u => h('span', {}, h('a', {href: '#/users/' + enc(u)}, u)))));
    }
    rule.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(estimateNow, 250); });
    const list = h('div', {id: 'audience-list'});
    async function loadList() {
      const res = await api('GET', '/v1/apps/' + app() + '/audiences');
      if (!res.ok) { fill(list, errorBox(res)); return; }
      fill(list, table(['name', 'rule', 'id', {label: 'updated', get: a => when(a.updatedAt)}], res.json.audiences,
        a => { rule.value = a.rule; name.value = a.name; estimateNow(); }));
    }
    main.append(h('section', {class: 'card'}, h('label', {for: 'rule'}, 'Rule (the rule language; see the README)'), rule, estimate,
      can('manage') ? h('div', {}, h('label', {for: 'audience-name'}, 'Save as'), name,
        h('button', {id: 'save-audience', onclick: async () => {
          const res = await api('POST', '/v1/apps/' + app() + '/audiences', {name: name.value, rule: rule.value});
          fill(saveOut, res.ok ? h('div', {class: 'ok'}, 'Saved as ' + res.json.id) : errorBox(res, rule.value));
          if (res.ok) loadList();
        }}, 'Save audience'), saveOut) : null),
    h('section', {class: 'card'}, h('h2', {}, 'Saved audiences'), list));
    const tiers = h('div', {id: 'tiers'});
    main.append(h('section', {class: 'card'}, h('h2', {}, 'Lifecycle and RFM tiers'), tiers));
    await loadList();
    const t = await api('GET', '/v1/apps/' + app() + '/tiers');
    if (!t.ok) { tiers.append(errorBox(t)); return; }
    tiers.append(h('p', {class: 'muted'}, 'computed ' + when(t.json.computedAt)), h('div', {class: 'row'},
      table(['lifecycle', {label: 'users', num: true, get: r => r.n}], Object.entries(t.json.lifecycle || {}).map(([k, n]) => ({lifecycle: k, n}))),
      table(['rfm', {label: 'users', num: true, get: r => r.n}], Object.entries(t.json.rfm || {}).map(([k, n]) => ({rfm: k, n})))));
  };

  // ---- templates ----------------------------------------------------------------------------
  const TEMPLATE_EXAMPLE = {id: 'welcome', defaultLocale: 'en', locales: {en: {push: {title: 'Hi {{user.firstName}}', body: '{{item}} is back'}}}, defaults: {item: 'your item'}};
  VIEWS.templates = async function (main) {
    main.append(h('h1', {}, 'Templates'));
    const list = h('div', {id: 'template-list'});
    const editor = h('textarea', {class: 'big', id: 'template-json', spellcheck: 'false'});
    editor.value = JSON.stringify(TEMPLATE_EXAMPLE, null, 2);
    const out = h('div', {id: 'template-result'});
    const user = h('input', {type: 'text', id: 'preview-user', placeholder: 'user id'});
    const locale = h('input', {type: 'text', id: 'preview-locale', placeholder: 'locale (default: the user\'s)'});
    const vars = h('input', {type: 'text', id: 'preview-vars', placeholder: '{"item": "The red shoe"}'});
    const preview = h('div', {id: 'preview'});
    let current = null;
    async function loadList() {
      const res = await api('GET', '/v1/apps/' + app() + '/templates');
      if (!res.ok) { fill(list, errorBox(res)); return; }
      fill(list, table(['id', {label: 'locales', get: t => Object.keys(t.locales).join(', ')}, {label: 'updated', get: t => when(t.updatedAt)}],
        res.json.templates, t => { current = t.id; const c = {...t}; delete c.updatedAt; editor.value = JSON.stringify(c, null, 2); }));
    }
    function parsed() {
      try { return JSON.parse(editor.value); } catch (e) { fill(out, h('div', {class: 'error'}, 'not JSON: ' + e.message)); return null; }
    }
    main.append(h('section', {class: 'card'}, h('h2', {}, 'All templates'), list),
      h('section', {class: 'card'}, h('h2', {}, 'Editor'),
        h('p', {class: 'muted'}, 'Per locale and channel (push title/body/data, sms body), Mustache; variables user.*, campaign.*, event.*, vars.* and the defaults.'),
        editor, can('manage') ? h('button', {id: 'save-template', onclick: async () => {
          const t = parsed();
          if (!t) return;
          const exists = t.id && (current === t.id || (await api('GET', '/v1/apps/' + app() + '/templates/' + enc(t.id))).ok);
          const res = exists ? await api('PUT', '/v1/apps/' + app() + '/templates/' + enc(t.id), t)
            : await api('POST', '/v1/apps/' + app() + '/templates', t);
          if (res.ok) { current = res.json.id; loadList(); }
          fill(out, res.ok ? h('div', {class: 'ok'}, 'Saved ' + res.json.id) : errorBox(res, fieldText(t, res)));
        }}, 'Save') : null, out),
      h('section', {class: 'card'}, h('h2', {}, 'Preview on a user'), h('div', {class: 'row'},
        h('div', {}, h('label', {for: 'preview-user'}, 'User'), user), h('div', {}, h('label', {for: 'preview-locale'}, 'Locale'), locale),
        h('div', {}, h('label', {for: 'preview-vars'}, 'vars (JSON)'), vars)),
      h('button', {id: 'preview-button', onclick: async () => {
        const t = parsed();
        if (!t) return;
        const body = {user: user.value};
        if (locale.value) body.locale = locale.value;
        if (vars.value) { try { body.vars = JSON.parse(vars.value); } catch (e) { fill(preview, h('div', {class: 'error'}, 'vars: not JSON')); return; } }
        const res = await api('POST', '/v1/apps/' + app() + '/templates/' + enc(t.id) + '/preview', body);
        if (!res.ok) { fill(preview, errorBox(res)); return; }
        const r = res.json;
        fill(preview, h('p', {class: 'muted'}, 'locale ' + r.locale),
          r.push ? h('div', {class: 'card', id: 'preview-push'}, h('strong', {}, r.push.title || ''), h('div', {}, r.push.body || '')) : null,
          r.sms ? h('div', {class: 'card', id: 'preview-sms'}, 'SMS: ' + r.sms.body) : null);
      }}, 'Preview (saved version)'), preview));
    await loadList();
  };

  // The text of the field a template error names (for the caret), e.g. locales.en.push.body.
  function fieldText(obj, res) {
    const f = res.json && res.json.error && res.json.error.field;
    if (!f) return null;
    let v = obj;
    for (const p of f.split('.')) { v = v == null ? null : v[p]; }
    return typeof v === 'string' ? v : null;
  }

  // ---- campaigns ----------------------------------------------------------------------------
  VIEWS.campaigns = async function (main, rest) {
    if (rest[0] === 'new') return campaignForm(main);
    if (rest[0]) return campaignDetail(main, rest[0]);
    main.append(h('h1', {}, 'Campaigns'));
    if (can('manage')) main.append(h('button', {id: 'new-campaign', onclick: () => { location.hash = '#/campaigns/new'; }}, 'New campaign'));
    const list = h('section', {class: 'card', id: 'campaign-list'});
    main.append(list);
    const res = await api('GET', '/v1/apps/' + app() + '/campaigns');
    if (!res.ok) { list.append(errorBox(res)); return; }
    list.append(table(['name', {label: 'state', get: c => h('span', {class: 'badge ' + c.state}, c.state)}, 'id',
      {label: 'schedule', get: c => c.schedule && c.schedule.type}, {label: 'created by', get: c => c.createdBy}, {label: 'updated', get: c => when(c.updatedAt)}],
    res.json.campaigns, c => { location.hash = '#/campaigns/' + enc(c.id); }));
  };

  async function campaignForm(main) {
    main.append(h('h1', {}, 'New campaign'));
    const [auds, tpls] = await Promise.all([api('GET', '/v1/apps/' + app() + '/audiences'), api('GET', '/v1/apps/' + app() + '/templates')]);
    const f = {
      name: h('input', {type: 'text', id: 'c-name'}),
      audience: h('select', {id: 'c-audience'}, h('option', {value: ''}, 'an inline rule ->'),
        (auds.ok ? auds.json.audiences : []).map(a => h('option', {value: a.id}, a.name + ' (' + a.rule + ')'))),
      rule: h('input', {type: 'text', id: 'c-rule', placeholder: 'tag:vip'}),
      template: h('select', {id: 'c-template'}, h('option', {value: ''}, 'inline copy ->'),
        (tpls.ok ? tpls.json.templates : []).map(t => h('option', {value: t.id}, t.id))),
      vars: h('input', {type: 'text', id: 'c-vars', placeholder: '{"item": "Winter boots"}'}),
      title: h('input', {type: 'text', id: 'c-title'}), body: h('input', {type: 'text', id: 'c-body'}),
      channel: h('select', {id: 'c-channel'}, ['auto', 'apns', 'fcm', 'sms'].map(c => h('option', {value: c}, c))),
      priority: h('input', {type: 'number', id: 'c-priority', min: 1, max: 10, value: '5'}),
      category: h('input', {type: 'text', id: 'c-category'}),
      schedule: h('select', {id: 'c-schedule'}, h('option', {value: 'now'}, 'at approval'), h('option', {value: 'at'}, 'at a time'), h('option', {value: 'best_hour'}, 'each user\'s best hour')),
      at: h('input', {type: 'datetime-local', id: 'c-at'}),
      throttle: h('input', {type: 'number', id: 'c-throttle', min: 1, placeholder: 'no throttle'}),
      variants: h('select', {id: 'c-variants', multiple: true, size: 3},
        (tpls.ok ? tpls.json.templates : []).map(t => h('option', {value: t.id}, t.id))),
      testPercent: h('input', {type: 'number', id: 'c-test-percent', min: 1, max: 50, placeholder: 'no horse race'}),
      metric: h('select', {id: 'c-metric'}, ['click', 'open', 'conversion'].map(m => h('option', {value: m}, m))),
      decideAfter: h('input', {type: 'text', id: 'c-decide-after', value: '1h'}),
      stages: h('input', {type: 'text', id: 'c-stages', placeholder: '1, 10, 50, 100 (no rollout)'}),
      holdFor: h('input', {type: 'text', id: 'c-hold-for', value: '15m'}),
      optOut: h('input', {type: 'number', id: 'c-opt-out', step: '0.005', min: 0, max: 1, placeholder: 'default guard (0.03 over 1h)'}),
      advanced: h('textarea', {id: 'c-advanced', spellcheck: 'false', placeholder: '{"experiment": {...}, "rollout": {...}, "guards": [...], "content": {"variants": [...]}, "holdoutPercent": 10}'})
    };
    const out = h('div', {id: 'campaign-form-result'});
    const field = (label, el) => h('div', {}, h('label', {for: el.id}, label), el);
    main.append(h('section', {class: 'card', id: 'campaign-form'},
      h('div', {class: 'row'}, field('Name', f.name), field('Channel', f.channel), field('Priority (1-10)', f.priority), field('Category', f.category)),
      h('div', {class: 'row'}, field('Audience', f.audience), field('Inline rule', f.rule)),
      h('div', {class: 'row'}, field('Template', f.template), field('vars (JSON)', f.vars), field('Inline title', f.title), field('Inline body', f.body)),
      h('div', {class: 'row'}, field('Schedule', f.schedule), field('At (your local time)', f.at), field('Throttle (per minute)', f.throttle)),
      h('div', {class: 'row'}, field('Variants: two or more templates (ctrl-click)', f.variants), field('Horse race: test share %', f.testPercent),
        field('Horse race: metric', f.metric), field('Horse race: decide after', f.decideAfter)),
      h('div', {class: 'row'}, field('Gray rollout: stages %', f.stages), field('Gray rollout: hold each', f.holdFor),
        field('Guard: pause at opt-out rate', f.optOut)),
      field('Any other field (JSON merged into the definition: holdoutPercent, conversionEvent, rollout gates, guards, endAt...)', f.advanced),
      h('button', {id: 'create-campaign', onclick: async () => {
        const def = {name: f.name.value, channel: f.channel.value, priority: parseInt(f.priority.value || '5', 10)};
        if (f.category.value) def.category = f.category.value;
        def.audience = f.audience.value ? {id: f.audience.value} : {rule: f.rule.value};
        if (f.template.value) {
          def.content = {template: f.template.value};
          if (f.vars.value) { try { def.content.vars = JSON.parse(f.vars.value); } catch (e) { fill(out, h('div', {class: 'error'}, 'vars: not JSON')); return; } }
        } else {
          def.content = {title: f.title.value, body: f.body.value};
        }
        const variants = Array.from(f.variants.selectedOptions).map(o => o.value);
        if (variants.length >= 2) {
          const v = def.content.vars;
          def.content = {variants: variants.map((t, i) => Object.assign({id: String.fromCharCode(97 + i), template: t}, v ? {vars: v} : {}))};
        }
        if (f.testPercent.value) {
          def.experiment = {testPercent: parseFloat(f.testPercent.value), metric: f.metric.value, decideAfter: f.decideAfter.value};
        }
        if (f.stages.value.trim()) {
          def.rollout = {stages: f.stages.value.split(',').map(x => parseFloat(x)), holdFor: f.holdFor.value};
        }
        if (f.optOut.value) {
          def.guards = [{metric: 'opt_out', window: '1h', minVolume: 200, pauseAt: parseFloat(f.optOut.value)}];
        }
        def.schedule = {type: f.schedule.value};
        if (f.schedule.value === 'at') def.schedule.at = f.at.value ? new Date(f.at.value).toISOString() : '';
        if (f.throttle.value) def.throttle = {perMinute: parseInt(f.throttle.value, 10)};
        if (f.advanced.value.trim()) {
          let adv;
          try { adv = JSON.parse(f.advanced.value); } catch (e) { fill(out, h('div', {class: 'error'}, 'advanced: not JSON: ' + e.message)); return; }
          for (const [k, v] of Object.entries(adv)) {
            def[k] = (k === 'content' && typeof v === 'object') ? Object.assign(def.content, v) : v;
          }
        }
        const res = await api('POST', '/v1/apps/' + app() + '/campaigns', def);
        if (!res.ok) { fill(out, errorBox(res, def.audience.rule)); return; }
        location.hash = '#/campaigns/' + enc(res.json.id);
      }}, 'Create draft'), out));
  }

  const MOVES = {
    draft: [['submit', 'manage']],
    pending_approval: [['approve', 'approve'], ['reject', 'approve'], ['cancel', 'manage']],
    approved: [['cancel', 'manage']],
    running: [['pause', 'manage'], ['cancel', 'manage']],
    paused: [['resume', 'manage'], ['cancel', 'manage']]
  };

  async function campaignDetail(main, id) {
    const base = '/v1/apps/' + app() + '/campaigns/' + enc(id);
    const head = h('div', {id: 'campaign-head'});
    const actions = h('section', {class: 'card', id: 'campaign-actions'});
    const result = h('div', {id: 'action-result'});
    const report = h('div', {id: 'campaign-report'});
    const history = h('section', {class: 'card', id: 'campaign-history'});
    const seriesEl = h('div', {class: 'chart', id: 'campaign-chart'});
    main.append(head, actions, result, report, h('section', {class: 'card'}, h('h2', {}, 'Per minute since the launch'), seriesEl), history);
    let plot = null;
    let shownState = null;
    async function move(action) {
      let body;
      if (action === 'reject' || action === 'resume' && $('#resume-reason')) {
        const reason = ($('#' + action + '-reason') || {}).value || '';
        body = action === 'resume' ? {acknowledge: true, reason} : {reason};
      }
      const res = await api('POST', base + '/' + action, body);
      fill(result, res.ok ? h('div', {class: 'ok'}, action + ': now ' + res.json.state) : errorBox(res));
      load();
    }
    async function load() {
      const [c, r] = await Promise.all([api('GET', base), api('GET', base + '/report')]);
      if (!c.ok) { fill(head, errorBox(c)); return; }
      const cp = c.json;
      fill(head, h('h1', {}, cp.name + ' ', h('span', {class: 'badge ' + cp.state, id: 'campaign-state'}, cp.state)),
        h('p', {class: 'muted'}, cp.id + ' · made by ' + cp.createdBy + ' · last edited by ' + cp.updatedBy +
          (cp.approval ? ' · approved by ' + cp.approval.by + ' at ' + when(cp.approval.at) : '')));
      if (shownState !== cp.state) {
        shownState = cp.state;
        const moves = (MOVES[cp.state] || []).filter(([, role]) => can(role));
        const guardPaused = cp.state === 'paused' && r.ok && r.json.guards && r.json.guards.tripped;
        fill(actions, h('h2', {}, 'Actions'), moves.length ? null : h('p', {class: 'muted'}, 'Nothing this key may do in this state.'),
          moves.map(([a]) => h('button', {id: 'action-' + a, class: a === 'cancel' || a === 'reject' ? 'danger' : null, onclick: () => move(a)}, a)),
          moves.some(([a]) => a === 'reject') ? h('input', {type: 'text', id: 'reject-reason', placeholder: 'reason (required to reject)'}) : null,
          guardPaused && moves.some(([a]) => a === 'resume') ? h('input', {type: 'text', id: 'resume-reason', placeholder: 'why it is safe to resume (acknowledges the guard)'}) : null);
      }
      fill(history, h('h2', {}, 'History'), table([{label: 'at', get: e => when(e.at)}, 'action', 'by', 'from', 'to', 'reason'], cp.history || []));
      if (!r.ok) { fill(report, errorBox(r)); return; }
      renderReport(report, r.json);
      const b = (r.json.series && r.json.series.buckets) || [];
      const xs = b.map(x => x.start / 1000);
      const data = ['submitted', 'accepted', 'delivered', 'opened', 'clicked'].map(k => ({label: k, data: b.map(x => x.counts[k] || 0)}));
      if (plot) plot.setData([xs].concat(data.map(d => d.data))); else if (xs.length) plot = chart(seriesEl, 'campaign messages', xs, data);
    }
    await load();
    every(2000, load);
  }

  function renderReport(el, r) {
    const p = r.progress || {};
    const bar = h('div');
    bar.style.width = Math.min(100, p.percent || 0) + '%';
    const parts = [h('section', {class: 'card', id: 'progress'}, h('h2', {}, 'Progress'),
      h('div', {class: 'progress'}, bar),
      h('p', {}, 'fanned out ' + fmt(p.fannedOut || 0) + ' of ' + fmt(p.audienceSize) + ' (' + (p.percent || 0) + '%)' +
        (p.holdout ? ' · holdout ' + fmt(p.holdout) : '') + (p.outcome ? ' · ' + p.outcome : '')))];
    const g = r.guards || {};
    if (g.tripped) {
      const t = g.tripped;
      parts.push(h('div', {class: 'error', id: 'guard-tripped'}, 'Paused by a guard: ' + t.metric + ' ' + pct(t.rate) + ' (' + fmt(t.count) + ' of ' + fmt(t.volume) +
        ' in ' + t.window + ') >= pauseAt ' + pct(t.pauseAt) + ' at ' + when(t.at) + '. Resume acknowledges it.'));
    }
    (g.warnings || []).forEach(w => parts.push(h('div', {class: 'warn'}, 'guard warning: ' + (typeof w === 'string' ? w : JSON.stringify(w)))));
    const counts = r.counts || {};
    parts.push(h('section', {class: 'card', id: 'funnel'}, h('h2', {}, 'Funnel'),
      funnelBars(counts, ['submitted', 'accepted', 'delivered', 'opened', 'clicked']),
      h('p', {class: 'muted'}, 'failed ' + fmt(counts.failed) + ' · dropped ' + fmt(counts.dropped) + ' · capped ' + fmt(counts.capped) +
        ' · held ' + fmt(counts.held) + ' · opt-outs ' + fmt(counts.opt_out) + ' · open rate ' + pct(r.rates && r.rates.openRate) +
        ' · click-through ' + pct(r.rates && r.rates.clickThroughRate)),
      byReason('failed', r.failedBy), byReason('dropped', r.droppedBy), byReason('held', r.heldBy)));
    const variants = Object.entries(r.variants || {}).filter(([v, x]) => v !== 'test' || (x.counts && x.counts.submitted));
    if (variants.length) {
      parts.push(h('section', {class: 'card', id: 'variants'}, h('h2', {}, 'Variants'),
        table(['variant', {label: 'accepted', num: true, get: v => v.x.counts.accepted}, {label: 'opened', num: true, get: v => v.x.counts.opened},
          {label: 'open rate (95%)', get: v => interval(v.x.intervals && v.x.intervals.opened)},
          {label: 'clicked', num: true, get: v => v.x.counts.clicked}, {label: 'click rate (95%)', get: v => interval(v.x.intervals && v.x.intervals.clicked)},
          {label: 'p vs best', get: v => v.x.vsBest == null ? '-' : (+v.x.vsBest).toPrecision(3)}],
        variants.map(([variant, x]) => ({variant, x})))));
    }
    if (r.experiment) {
      const e = r.experiment;
      const d = e.decision;
      parts.push(h('section', {class: 'card', id: 'experiment'}, h('h2', {}, 'Horse race'), h('p', {}, 'state: ' + (e.state || '-')),
        d ? h('div', {class: d.winner ? 'ok' : 'warn', id: 'decision'}, (d.winner ? 'winner ' + d.winner : 'no winner (' + d.reason + ')') +
          ', sending ' + (d.chosen || 'nothing') + ' · p = ' + (d.pValue == null ? '-' : (+d.pValue).toPrecision(3)) + ', alpha ' + d.alpha +
          ' · decided ' + when(d.at)) : h('p', {class: 'muted'}, 'not decided yet')));
    }
    if (r.rollout) {
      const ro = r.rollout;
      parts.push(h('section', {class: 'card', id: 'rollout'}, h('h2', {}, 'Gray rollout'),
        h('p', {}, 'stage ' + fmt(ro.stage) + ' (' + fmt(ro.percent) + '%)' + (ro.heldSince ? ' · held since ' + when(ro.heldSince) : '')),
        (ro.gates || []).length ? table([{label: 'reading', get: x => JSON.stringify(x)}], ro.gates) : null));
    }
    if (r.holdout) {
      const ho = r.holdout;
      const group = (name, g) => g ? h('tr', {}, h('td', {}, name), h('td', {class: 'num'}, fmt(g.users)), h('td', {class: 'num'}, fmt(g.converted)),
        h('td', {}, pct(g.rate) + ' [' + pct(g.low) + ', ' + pct(g.high) + ']')) : null;
      parts.push(h('section', {class: 'card', id: 'holdout'}, h('h2', {}, 'Holdout uplift' + (ho.conversionEvent ? ' (' + ho.conversionEvent + ')' : '')),
        h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, ''), h('th', {class: 'num'}, 'users'), h('th', {class: 'num'}, 'converted'), h('th', {}, 'rate (95%)'))),
          h('tbody', {}, group('treated', ho.treated), group('held out', ho.holdout))),
        ho.uplift ? h('p', {id: 'uplift'}, 'uplift ' + pct(ho.uplift.value) + ' [' + pct(ho.uplift.low) + ', ' + pct(ho.uplift.high) + ']') : null));
    }
    fill(el, ...parts);
  }

  function byReason(kind, m) {
    const rows = Object.entries(m || {}).filter(([, n]) => n > 0);
    return rows.length ? h('div', {}, h('strong', {}, kind + ' by reason: '), rows.map(([k, n]) => k + ' ' + fmt(n)).join(', ')) : null;
  }

  function interval(i) {
    return i ? pct(i.rate) + ' [' + pct(i.low) + ', ' + pct(i.high) + '] of ' + fmt(i.of) : '-';
  }

  // ---- triggers -----------------------------------------------------------------------------
  VIEWS.triggers = async function (main, rest) {
    main.append(h('h1', {}, 'Triggers'));
    const list = h('section', {class: 'card', id: 'trigger-list'});
    const stats = h('section', {class: 'card', id: 'trigger-stats'});
    main.append(list, stats);
    const res = await api('GET', '/v1/apps/' + app() + '/triggers');
    if (!res.ok) { list.append(errorBox(res)); return; }
    async function show(t) {
      const s = await api('GET', '/v1/apps/' + app() + '/triggers/' + enc(t.id) + '/stats');
      if (!s.ok) { fill(stats, errorBox(s)); return; }
      const c = s.json.counters || s.json;
      fill(stats, h('h2', {}, t.name + ' (' + t.id + ')'),
        h('p', {class: 'muted'}, 'on ' + t.on.event + (t.unless ? ' unless ' + t.unless.event + ' within ' + t.unless.within : '') + ', after ' + t.delay),
        h('div', {class: 'tiles'}, Object.entries(c).filter(([, v]) => typeof v === 'number').map(([k, v]) =>
          h('div', {class: 'tile'}, h('div', {class: 'n'}, fmt(v)), h('div', {class: 'l'}, k)))),
        s.json.funnel ? funnelBars(s.json.funnel.counts || {}, ['submitted', 'accepted', 'delivered', 'opened', 'clicked']) : null);
    }
    list.append(table(['name', 'id', {label: 'state', get: t => h('span', {class: 'badge ' + t.state}, t.state)},
      {label: 'on', get: t => t.on.event}, {label: 'unless', get: t => t.unless ? t.unless.event + ' within ' + t.unless.within : '-'}, 'delay'],
    res.json.triggers, show));
    if (!res.json.triggers.length) list.append(h('p', {class: 'muted'}, 'No trigger rules yet (POST /v1/apps/{app}/triggers).'));
  };

  // ---- users --------------------------------------------------------------------------------
  VIEWS.users = async function (main, rest) {
    main.append(h('h1', {}, 'User lookup'));
    const input = h('input', {type: 'text', id: 'user-id', placeholder: 'user id', value: rest[0] || ''});
    const out = h('div', {id: 'user'});
    const go = () => { location.hash = '#/users/' + enc(input.value.trim()); };
    main.append(h('section', {class: 'card'}, h('form', {onsubmit: ev => { ev.preventDefault(); go(); }},
      h('label', {for: 'user-id'}, 'User'), input, h('button', {type: 'submit', id: 'lookup'}, 'Look up'))), out);
    if (!rest[0]) return;
    const res = await api('GET', '/v1/apps/' + app() + '/users/' + enc(rest[0]));
    if (!res.ok) { out.append(errorBox(res)); return; }
    const u = res.json;
    const eng = u.engagement || {};
    const hours = h('div', {class: 'chart', id: 'engagement-chart'});
    out.append(h('div', {class: 'row'},
      h('section', {class: 'card', id: 'profile'}, h('h2', {}, 'Profile'), h('dl', {class: 'kv'},
        ['user', 'phone', 'locale', 'timeZone'].map(k => [h('dt', {}, k), h('dd', {}, u[k] == null ? '-' : String(u[k]))]),
        h('dt', {}, 'consent'), h('dd', {}, Object.entries(u.consent || {}).map(([ch, c]) => ch + ': ' + c.state).join(', ')),
        h('dt', {}, 'tiers'), h('dd', {}, Object.entries(u.tiers || {}).map(([k, v]) => k + ' ' + v).join(', ') || '-'),
        h('dt', {}, 'aliases'), h('dd', {}, Object.entries(u.aliases || {}).map(([k, v]) => k + ':' + v).join(', ') || '-')),
      h('p', {class: 'muted'}, 'Personal data is masked by the API (the phone shows its first and last digits only).')),
      h('section', {class: 'card'}, h('h2', {}, 'Tags'), h('div', {class: 'chips', id: 'user-tags'}, (u.tags || []).map(t => h('span', {}, t))),
        h('h2', {}, 'Attributes'), table(['name', {label: 'value', get: a => JSON.stringify(a.value)}], Object.entries(u.attributes || {}).map(([name, value]) => ({name, value}))),
        h('h2', {}, 'Devices'), table(['id', 'platform', 'state', {label: 'last seen', get: d => when(d.lastSeen)}], u.devices || []))),
    h('section', {class: 'card'}, h('h2', {}, 'Engagement by local hour (' + (eng.timeZone || 'UTC') + ')' +
      (eng.habitualHour != null ? ' · habitual hour ' + eng.habitualHour : '')), hours),
    h('section', {class: 'card'}, h('h2', {}, 'Events (counts in the window)'),
      table(['name', {label: 'count', num: true, get: e => e.count}, {label: 'last', get: e => when(e.last)}],
        Object.entries(u.events || {}).map(([name, e]) => ({name, count: e.count, last: e.last})))));
    const recent = h('section', {class: 'card', id: 'recent-messages'}, h('h2', {}, 'Recent messages'));
    out.append(recent);
    barChart(hours, 'engagement', Array.from({length: 24}, (_, i) => String(i)), eng.hours || new Array(24).fill(0));
    const msgs = u.recentMessages || [];
    if (!msgs.length) { recent.append(h('p', {class: 'muted'}, 'None in the last 7 days.')); return; }
    const detail = h('div', {id: 'message-history'});
    const rows = await Promise.all(msgs.map(async m => {
      const r = await api('GET', '/v1/messages/' + enc(m.id));
      return {id: m.id, at: m.at, state: r.ok ? r.json.state : 'unknown', json: r.json};
    }));
    recent.append(table(['id', {label: 'sent', get: m => when(m.at)}, {label: 'state', get: m => h('span', {class: 'badge'}, m.state)},
      {label: 'batch', get: m => m.json.batchId || '-'}], rows,
    m => fill(detail, h('h2', {}, 'History of ' + m.id), table([{label: 'at', get: e => when(e.at)}, {label: 'event', get: e => e.state || e.event}, {label: 'detail', get: e => e.reason || e.channel || ''}],
      m.json.history || []))), detail);
  };

  // ---- dead letters -------------------------------------------------------------------------
  VIEWS['dead-letters'] = async function (main) {
    main.append(h('h1', {}, 'Dead letters'));
    const box = h('section', {class: 'card', id: 'dead-letters'});
    const out = h('div', {id: 'redrive-result'});
    main.append(box, out);
    async function load() {
      const res = await api('GET', '/v1/dead-letters');
      if (!res.ok) { fill(box, errorBox(res)); return; }
      const rows = res.json.deadLetters || [];
      fill(box, h('p', {}, fmt(rows.length) + ' on this page (messages that failed past their retries).'),
        rows.length && can('send') ? h('button', {id: 'redrive', onclick: async () => {
          const r = await api('POST', '/v1/dead-letters/redrive', {ids: rows.map(d => d.id)});
          fill(out, r.ok ? h('div', {class: 'ok'}, 'redriven: ' + JSON.stringify(r.json)) : errorBox(r));
          load();
        }}, 'Redrive these') : null,
        table(['id', {label: 'user', get: d => d.user || (d.message && d.message.user)}, {label: 'reason', get: d => d.reason || d.error},
          {label: 'at', get: d => when(d.at || d.deadAt)}], rows));
    }
    await load();
  };

  // ---- policy -------------------------------------------------------------------------------
  VIEWS.policy = async function (main) {
    main.append(h('h1', {}, 'Delivery policy'));
    const editor = h('textarea', {class: 'big', id: 'policy-json', spellcheck: 'false'});
    const info = h('p', {class: 'muted', id: 'policy-version'});
    const out = h('div', {id: 'policy-result'});
    let etag = null;
    async function load() {
      const res = await api('GET', '/v1/apps/' + app() + '/policy');
      if (!res.ok) { fill(out, errorBox(res)); return; }
      etag = res.headers.get('ETag');
      const p = {...res.json};
      delete p.version;
      editor.value = JSON.stringify(p, null, 2);
      info.textContent = 'version ' + res.json.version + ' (saving sends If-Match: ' + etag + ')';
    }
    main.append(h('section', {class: 'card'}, h('p', {class: 'muted'}, 'Frequency caps, quiet hours, default classes and best-hour defaults. Every node applies a change within seconds.'),
      info, editor, can('admin') ? h('button', {id: 'save-policy', onclick: async () => {
        let p;
        try { p = JSON.parse(editor.value); } catch (e) { fill(out, h('div', {class: 'error'}, 'not JSON: ' + e.message)); return; }
        const res = await api('PUT', '/v1/apps/' + app() + '/policy', p, etag ? {'If-Match': etag} : {});
        if (res.status === 412) {
          fill(out, errorBox(res), h('div', {class: 'warn'}, 'Someone changed the policy since you loaded it. Reload to see their version, then make your change again.'),
            h('button', {class: 'secondary', id: 'reload-policy', onclick: () => { out.replaceChildren(); load(); }}, 'Reload'));
          return;
        }
        fill(out, res.ok ? h('div', {class: 'ok'}, 'Saved: version ' + res.json.version) : errorBox(res));
        if (res.ok) load();
      }}, 'Save') : h('p', {class: 'muted'}, 'Changing the policy needs the admin role.'), out));
    await load();
  };

  // ---- keys (admin) -------------------------------------------------------------------------
  const ROLES = ['send', 'manage', 'approve', 'read', 'admin'];
  VIEWS.keys = async function (main) {
    main.append(h('h1', {}, 'API keys'));
    if (!can('admin')) {
      main.append(h('div', {class: 'warn'}, 'Managing keys needs the admin role.'));
      return;
    }
    const list = h('section', {class: 'card', id: 'key-list'});
    const out = h('div', {id: 'key-result'});
    const name = h('input', {type: 'text', id: 'key-name', placeholder: 'who or what uses it'});
    const boxes = ROLES.map(r => h('input', {type: 'checkbox', id: 'key-role-' + r, value: r}));
    async function load() {
      const res = await api('GET', '/v1/apps/' + app() + '/keys');
      if (!res.ok) { fill(list, errorBox(res)); return; }
      fill(list, h('h2', {}, 'Keys of ' + S.me.app), table(['id', 'name', {label: 'roles', get: k => k.roles.join(', ')}, 'source',
        {label: 'created', get: k => when(k.createdAt)}, 'createdBy',
        {label: '', get: k => k.source === 'api' && k.id !== S.me.id ? revokeButton(k) : ''}], res.json.keys));
    }
    function revokeButton(k) {
      const b = h('button', {class: 'danger', 'data-key': k.id, onclick: async () => {
        if (!b.dataset.armed) { b.dataset.armed = '1'; b.textContent = 'Really revoke ' + k.id + '?'; return; }
        const res = await api('DELETE', '/v1/apps/' + app() + '/keys/' + enc(k.id));
        fill(out, res.ok ? h('div', {class: 'ok'}, 'Revoked ' + k.id + ': every node refuses it within about a second.') : errorBox(res));
        load();
      }}, 'Revoke');
      return b;
    }
    main.append(h('section', {class: 'card'}, h('h2', {}, 'Issue a key'), h('label', {for: 'key-name'}, 'Name'), name,
      h('label', {}, 'Roles'), h('div', {}, boxes.map(b => h('label', {class: 'inline'}, b, ' ' + b.value))),
      h('button', {id: 'issue-key', onclick: async () => {
        const roles = boxes.filter(b => b.checked).map(b => b.value);
        const body = {roles};
        if (name.value) body.name = name.value;
        const res = await api('POST', '/v1/apps/' + app() + '/keys', body);
        if (!res.ok) { fill(out, errorBox(res)); return; }
        fill(out, h('div', {class: 'ok'}, 'Key ' + res.json.id + ' (' + res.json.roles.join(', ') + '). Copy it now: it is shown this once.'),
          h('pre', {id: 'issued-key'}, res.json.key));
        load();
      }}, 'Issue'), out), list);
    await load();
  };

  // ---- start --------------------------------------------------------------------------------
  window.addEventListener('hashchange', route);
  $('#sign-out').addEventListener('click', () => signOut());
  (async function start() {
    const key = sessionStorage.getItem(KEY);
    if (key && (await signIn(key)).ok) {
      route();
    } else {
      showSignIn();
    }
  })();
})();

// Runs kommo_manifest/script.js the way Kommo does (AMD define, callbacks on a widget object)
// against a small stand-in for jQuery and the page, then prints what a user would see as JSON.
//
//   node kommo_widget_harness.js <script.js> <i18n/xx.json> <scenario>
//
// A hand-written fake of the few jQuery calls the widget makes; no browser needed.
'use strict';

const fs = require('fs');

// --- a tiny DOM ---------------------------------------------------------------------------
class El {
  constructor(tag, attrs) {
    this.tag = tag;
    this.attrs = Object.assign({}, attrs || {});
    this.children = [];
    this.parent = null;
    this.ownText = '';
    this.handlers = {};
  }
  classes() {
    return (this.attrs['class'] || '').split(/\s+/).filter(Boolean);
  }
  textContent() {
    return [this.ownText].concat(this.children.map((c) => c.textContent())).filter(Boolean).join(' ');
  }
  descendants() {
    const out = [];
    for (const child of this.children) {
      out.push(child, ...child.descendants());
    }
    return out;
  }
}

const documentRoot = new El('html');
const head = new El('head');
const body = new El('body');
[head, body].forEach((el) => {
  el.parent = documentRoot;
  documentRoot.children.push(el);
});

function matchesSimple(el, simple) {
  const m = simple.match(/^([a-z]+)?((?:[#.][\w-]+)*)((?:\[[\w-]+\])*)$/);
  if (!m) throw new Error('selector not supported by the harness: ' + simple);
  if (m[1] && el.tag !== m[1]) return false;
  for (const part of m[2].match(/[#.][\w-]+/g) || []) {
    if (part[0] === '#' && el.attrs.id !== part.slice(1)) return false;
    if (part[0] === '.' && !el.classes().includes(part.slice(1))) return false;
  }
  for (const attr of m[3].match(/[\w-]+/g) || []) {
    if (!(attr in el.attrs)) return false;
  }
  return true;
}

function select(scope, selector) {
  let current = scope;
  for (const simple of selector.trim().split(/\s+/)) {
    const next = [];
    for (const el of current) {
      for (const d of el.descendants()) {
        if (matchesSimple(d, simple) && !next.includes(d)) next.push(d);
      }
    }
    current = next;
  }
  return current;
}

function parseHtml(html) {
  // Only what the widget hands to render_template: one empty element with attributes.
  const m = html.match(/^<(\w+)((?:\s+[\w-]+="[^"]*")*)\s*><\/\1>$/);
  if (!m) throw new Error('html not supported by the harness: ' + html);
  const attrs = {};
  for (const a of m[2].matchAll(/([\w-]+)="([^"]*)"/g)) attrs[a[1]] = a[2];
  return new El(m[1], attrs);
}

// --- a tiny jQuery ------------------------------------------------------------------------
class Q {
  constructor(els) {
    this.els = els;
    this.length = els.length;
  }
  text(value) {
    if (value === undefined) return this.els.map((e) => e.textContent()).join(' ');
    this.els.forEach((e) => {
      e.children = [];
      e.ownText = String(value);
    });
    return this;
  }
  append(other) {
    return this.insert(other, false);
  }
  prepend(other) {
    return this.insert(other, true);
  }
  insert(other, atStart) {
    const target = this.els[0];
    if (!target) return this;
    for (const el of other instanceof Q ? other.els : [other]) {
      if (el.parent) el.parent.children.splice(el.parent.children.indexOf(el), 1);
      el.parent = target;
      if (atStart) target.children.unshift(el);
      else target.children.push(el);
    }
    return this;
  }
  empty() {
    this.els.forEach((e) => {
      e.children.forEach((c) => (c.parent = null));
      e.children = [];
      e.ownText = '';
    });
    return this;
  }
  remove() {
    this.els.forEach((e) => {
      if (e.parent) e.parent.children.splice(e.parent.children.indexOf(e), 1);
      e.parent = null;
    });
    return this;
  }
  find(selector) {
    return new Q(select(this.els, selector));
  }
  on(event, handler) {
    this.els.forEach((e) => (e.handlers[event] = handler));
    return this;
  }
}

function $(arg, attrs) {
  if (arg instanceof Q) return arg;
  if (arg instanceof El) return new Q([arg]);
  if (typeof arg === 'string' && arg[0] === '<') return new Q([new El(arg.replace(/[<>/]/g, ''), attrs)]);
  if (typeof arg === 'string') return new Q(select([documentRoot], arg));
  return new Q([]);
}

// --- Kommo's side -------------------------------------------------------------------------
const [scriptPath, i18nPath, scenario] = process.argv.slice(2);
const lang = JSON.parse(fs.readFileSync(i18nPath, 'utf8'));
const ORIGIN_OF = (source) => JSON.parse(source.match(/origin:\s*("[^"]*")/)[1]);
const source = fs.readFileSync(scriptPath, 'utf8');
const origin = ORIGIN_OF(source);

function deepFreeze(obj) {
  Object.values(obj).forEach((v) => v && typeof v === 'object' && deepFreeze(v));
  return Object.freeze(obj);
}
const cardId = scenario === 'new_card' ? 0 : 4242;
// Public widgets may only read APP (§4.6); frozen, a write throws in the widget's strict mode.
global.APP = deepFreeze({ data: { current_card: { id: cardId } } });

let Widget = null;
global.define = (deps, factory) => {
  if (JSON.stringify(deps) !== '["jquery"]') throw new Error('unexpected dependencies ' + deps);
  Widget = factory($);
};
new Function(source)();

const code = 'wz_test';
const workArea = new El('div', { id: 'work-area-' + code });
const cardPanel = new El('div', { 'class': 'card-widgets' });
const modal = new El('div', { 'class': 'modal ' + code });
const settingsBlock = new El('div', { 'class': 'widget_settings_block' });
const saveButton = new El('button', { 'class': 'kommo-save' });
settingsBlock.children.push(saveButton);
saveButton.parent = settingsBlock;
for (const el of [workArea, cardPanel, modal]) $(body).append(el);
$(modal).append(settingsBlock);

const requests = [];
const widget = new Widget();
widget.params = { widget_code: code, path: '/widgets/' + code, version: '1.0.0' };
widget.get_settings = () => ({ widget_code: code });
widget.get_version = () => '1.0.0';
widget.i18n = (key) => lang[key];
widget.system = () => ({ area: scenario.startsWith('card') || scenario === 'new_card' ? 'lcard' : 'widget_page' });
widget.render_template = (opts) => $(cardPanel).append(parseHtml(opts.render));
widget.$authorizedAjax = (opts) => {
  let settle;
  const promise = {
    then(ok, fail) {
      settle = { ok, fail };
      return promise;
    },
  };
  requests.push({ opts, answer: (kind, value) => (kind === 'ok' ? settle.ok(value) : settle.fail(value)) });
  return promise;
};

function view(el) {
  return {
    text: el.textContent(),
    frames: select([el], 'iframe').map((f) => ({ src: f.attrs.src, sandbox: f.attrs.sandbox || '' })),
    buttons: select([el], 'button').map((b) => b.textContent()),
    links: select([el], 'a').map((a) => a.attrs.href),
  };
}

const launch = origin + '/app/launch?lt=one-time';
const out = { origin };
const cb = widget.callbacks;
for (const name of ['render', 'init', 'bind_actions']) out[name] = cb[name]();

switch (scenario) {
  case 'menu_page':
    out.returned = cb.initMenuPage({ location: 'widget_page', item_code: 'wazzup_chats' });
    requests[0].answer('ok', { url: launch, expires_in: 120 });
    out.page = view(workArea);
    break;
  case 'advanced_settings':
    out.returned = cb.advancedSettings();
    requests[0].answer('ok', { url: launch, expires_in: 120 });
    out.page = view(workArea);
    break;
  case 'card':
    requests[0].answer('ok', { url: launch, expires_in: 120 });
    out.page = view(cardPanel);
    break;
  case 'new_card':
    out.page = view(cardPanel);
    break;
  case 'refused': {
    cb.initMenuPage({});
    const message = 'The integration is not installed in this Kommo account.';
    requests[0].answer('fail', { status: 403, responseJSON: { error: 'forbidden', message } });
    out.page = view(workArea);
    select([workArea], 'button')[0].handlers.click();
    out.after_retry = view(workArea);
    requests[1].answer('ok', { url: launch, expires_in: 120 });
    out.after_success = view(workArea);
    break;
  }
  case 'offline':
    cb.initMenuPage({});
    requests[0].answer('fail', { status: 0 });
    out.page = view(workArea);
    break;
  case 'foreign_url':
    cb.initMenuPage({});
    requests[0].answer('ok', { url: 'https://elsewhere.example/phish', expires_in: 120 });
    out.page = view(workArea);
    break;
  case 'left_before_answer':
    cb.initMenuPage({});
    cb.destroy();
    requests[0].answer('ok', { url: launch, expires_in: 120 });
    out.page = view(body);
    break;
  case 'settings_modal':
    out.returned = cb.settings(modal);
    out.on_save = cb.onSave({ active: 'Y', fields: {} });
    out.page = view(modal);
    out.order = settingsBlock.children.map((c) => c.attrs['class']);
    break;
  default:
    throw new Error('unknown scenario ' + scenario);
}
out.requests = requests.map((r) => ({
  url: r.opts.url,
  type: r.opts.type,
  contentType: r.opts.contentType,
  async: r.opts.async,
  body: JSON.parse(r.opts.data),
}));
out.stylesheets = select([head], 'link').map((l) => l.attrs.href);
process.stdout.write(JSON.stringify(out));

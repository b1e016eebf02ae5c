/*
 * A BX24-compatible bridge for offline use (the sandbox portal). In production our pages load
 * Bitrix24's official library instead; this file implements the same small surface on the same
 * documented wire (reference bitrix24.md §2.3):
 *
 *  - the frame talks to its parent with postMessage("command:params:callbackKey:APP_SID") sent to
 *    PROTOCOL://DOMAIN only, and accepts replies ("callbackKey:<json>") only from that origin;
 *  - DOMAIN / PROTOCOL / LANG / APP_SID come from the page's query (Bitrix24 puts them on the
 *    iframe URL) or the frame name "HOST|PROTO|APP_SID";
 *  - REST calls go straight to PROTOCOL://DOMAIN/rest/<method>.json with the user's AUTH_ID
 *    (Bitrix24's REST answers Access-Control-Allow-Origin: *), form-encoded with PHP brackets.
 */
(function (global) {
  'use strict';
  if (global.BX24) { return; }

  var query = new URLSearchParams(global.location.search);
  var frameName = String(global.name || '').split('|');
  var state = {
    domain: String(query.get('DOMAIN') || frameName[0] || '').replace(/:(80|443)$/, ''),
    https: String(query.get('PROTOCOL') || frameName[1] || '1') === '1',
    appSid: String(query.get('APP_SID') || frameName[2] || ''),
    lang: String(query.get('LANG') || ''),
    data: null,
    ready: false,
    started: false,
    waiting: [],
    callbacks: {},
    seq: 0
  };

  function targetOrigin() {
    return (state.https ? 'https' : 'http') + '://' + state.domain;
  }

  function send(command, params, callback) {
    var key = 'wz' + (++state.seq) + Math.random().toString(36).slice(2, 8);
    if (callback) { state.callbacks[key] = callback; }
    var parts = [command];
    if (params !== undefined && params !== null && params !== '') {
      parts.push(typeof params === 'string' ? params : JSON.stringify(params));
    }
    parts.push(key, state.appSid);
    global.parent.postMessage(parts.join(':'), targetOrigin());
  }

  global.addEventListener('message', function (event) {
    // Only the portal that framed us may answer; anything else is ignored.
    if (event.origin !== targetOrigin() || typeof event.data !== 'string') { return; }
    var at = event.data.indexOf(':');
    var key = at < 0 ? event.data : event.data.slice(0, at);
    var raw = at < 0 ? '' : event.data.slice(at + 1);
    var callback = state.callbacks[key];
    if (!callback) { return; }
    delete state.callbacks[key];
    var args;
    try { args = raw ? JSON.parse(raw) : undefined; } catch (e) { return; }
    callback(args);
  });

  // ------------------------------------------------------------------ PHP bracket encoding

  function flatten(value, prefix, out) {
    if (value === null || value === undefined) { return out; }
    if (typeof value === 'object') {
      Object.keys(value).forEach(function (k) {
        flatten(value[k], prefix ? prefix + '[' + k + ']' : k, out);
      });
      return out;
    }
    if (typeof value === 'boolean') { value = value ? '1' : '0'; }
    out.push([prefix, String(value)]);
    return out;
  }

  function queryString(params) {
    return new URLSearchParams(flatten(params || {}, '', [])).toString();
  }

  // ------------------------------------------------------------------ results

  function AjaxError(status, body) {
    this.status = status;
    this.ex = { error: body.error || '', error_description: body.error_description || '' };
  }
  AjaxError.prototype.getError = function () { return this.ex; };
  AjaxError.prototype.getStatus = function () { return this.status; };
  AjaxError.prototype.toString = function () {
    return (this.ex.error || 'ERROR') + (this.ex.error_description ? ': ' + this.ex.error_description : '');
  };

  function AjaxResult(status, body, method, params) {
    this.status = status;
    this.answer = body || {};
    this.query = { method: method, data: params };
  }
  AjaxResult.prototype.data = function () { return this.answer.result; };
  AjaxResult.prototype.error = function () {
    return ('error' in this.answer) ? new AjaxError(this.status, this.answer) : false;
  };
  AjaxResult.prototype.error_description = function () { return this.answer.error_description || ''; };
  AjaxResult.prototype.more = function () { return typeof this.answer.next === 'number'; };
  AjaxResult.prototype.total = function () { return parseInt(this.answer.total, 10) || 0; };
  AjaxResult.prototype.time = function () { return this.answer.time || null; };
  AjaxResult.prototype.next = function (callback) {
    if (!this.more()) { return false; }
    var params = Object.assign({}, this.query.data || {}, { start: this.answer.next });
    callMethod(this.query.method, params, callback);
    return true;
  };

  // ------------------------------------------------------------------ REST

  function post(method, pairs, callback, retried) {
    pairs.push(['auth', state.data ? state.data.AUTH_ID : '']);
    var url = targetOrigin() + '/rest/' + method + '.json';
    global.fetch(url, { method: 'POST', body: new URLSearchParams(pairs), credentials: 'omit', mode: 'cors' })
      .then(function (response) {
        return response.json().then(function (body) { return { status: response.status, body: body }; });
      })
      .then(function (res) {
        if (res.body && res.body.error === 'expired_token' && !retried) {
          refreshAuth(function () { post(method, pairs.slice(0, -1), callback, true); });
          return;
        }
        callback(res.status, res.body);
      }, function (err) {
        callback(0, { error: 'NETWORK_ERROR', error_description: String(err) });
      });
  }

  function callMethod(method, params, callback) {
    post(method, flatten(params || {}, '', []), function (status, body) {
      if (callback) { callback(new AjaxResult(status, body, method, params)); }
    });
  }

  function callBatch(calls, callback, haltOnError) {
    var keys = Object.keys(calls);
    var pairs = [['halt', haltOnError ? '1' : '0']];
    keys.forEach(function (key) {
      var c = calls[key];
      var method = Array.isArray(c) ? c[0] : c.method;
      var params = Array.isArray(c) ? c[1] : c.params;
      var qs = queryString(params);
      pairs.push(['cmd[' + key + ']', qs ? method + '?' + qs : method]);
    });
    post('batch', pairs, function (status, body) {
      var outer = (body && body.result) || {};
      var results = outer.result || {};
      var errors = outer.result_error || {};
      var out = Array.isArray(calls) ? [] : {};
      keys.forEach(function (key) {
        var c = calls[key];
        var method = Array.isArray(c) ? c[0] : c.method;
        var answer;
        if (body && body.error) {
          answer = { error: body.error, error_description: body.error_description };
        } else if (key in errors) {
          answer = errors[key];
        } else {
          answer = { result: results[key], total: (outer.result_total || {})[key], next: (outer.result_next || {})[key] };
        }
        out[key] = new AjaxResult(status, answer, method, Array.isArray(c) ? c[1] : c.params);
      });
      if (callback) { callback(out); }
    });
  }

  // ------------------------------------------------------------------ parent window

  function refreshAuth(callback) {
    send('refreshAuth', null, function (data) {
      if (data && state.data) {
        state.data.AUTH_ID = data.AUTH_ID;
        state.data.REFRESH_ID = data.REFRESH_ID;
        state.data.AUTH_EXPIRES = data.AUTH_EXPIRES;
      }
      if (callback) { callback(getAuth()); }
    });
  }

  function getAuth() {
    if (!state.data) { return false; }
    return {
      access_token: state.data.AUTH_ID,
      refresh_token: state.data.REFRESH_ID,
      expires_in: state.data.AUTH_EXPIRES,
      domain: state.domain,
      member_id: state.data.MEMBER_ID
    };
  }

  function init(callback) {
    if (state.ready) { if (callback) { callback(); } return; }
    if (callback) { state.waiting.push(callback); }
    if (state.started) { return; }
    state.started = true;
    send('getInitData', null, function (data) {
      state.data = data || {};
      if (!state.domain && state.data.DOMAIN) { state.domain = state.data.DOMAIN; }
      if (state.data.PROTOCOL !== undefined) { state.https = String(state.data.PROTOCOL) === '1'; }
      if (!state.lang) { state.lang = state.data.LANG || 'en'; }
      state.ready = true;
      state.waiting.splice(0).forEach(function (fn) { fn(); });
    });
  }

  // As the official library does: both sizes are whole pixels, and nothing is sent unless both
  // are positive; fitWindow sends the document's scroll height with the width "100%".
  function resizeWindow(width, height, callback) {
    width = parseInt(width, 10);
    height = parseInt(height, 10);
    if (width > 0 && height > 0) {
      send('resizeWindow', { width: width, height: height }, callback);
    }
  }

  function scrollSize() {
    var root = document.documentElement;
    return {
      scrollWidth: Math.max(root.scrollWidth, root.offsetWidth),
      scrollHeight: Math.max(root.scrollHeight, root.offsetHeight)
    };
  }

  global.BX24 = {
    init: init,
    ready: init,
    isAdmin: function () { return !!(state.data && (state.data.IS_ADMIN === true || state.data.IS_ADMIN === 'Y')); },
    getAuth: getAuth,
    refreshAuth: refreshAuth,
    getLang: function () { return state.lang || 'en'; },
    getDomain: function () { return state.domain; },
    callMethod: callMethod,
    callBatch: callBatch,
    callBind: function (event, handler, authType, callback) {
      var params = { event: event, handler: handler };
      if (authType) { params.auth_type = authType; }
      callMethod('event.bind', params, callback);
    },
    callUnbind: function (event, handler, authType, callback) {
      var params = { event: event, handler: handler };
      if (authType) { params.auth_type = authType; }
      callMethod('event.unbind', params, callback);
    },
    installFinish: function () { send('setInstallFinish', null); },
    resizeWindow: resizeWindow,
    getScrollSize: scrollSize,
    fitWindow: function (callback) {
      // The document's scroll height never goes below the frame's: this only ever grows it.
      send('resizeWindow', { width: '100%', height: scrollSize().scrollHeight }, callback);
    },
    setTitle: function (title, callback) { send('setTitle', { title: String(title) }, callback); },
    placement: {
      info: function () {
        var d = state.data || {};
        var options = d.PLACEMENT_OPTIONS;
        if (typeof options === 'string') { try { options = JSON.parse(options); } catch (e) { options = {}; } }
        return { placement: d.PLACEMENT || 'DEFAULT', options: options || {} };
      }
    }
  };
}(window));

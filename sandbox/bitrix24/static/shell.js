/*
 * The parent side of the BX24 bridge, as the Bitrix24 page plays it (reference bitrix24.md §2.3):
 * messages "command:params:callbackKey:APP_SID" arrive from the app's frame; replies go back as
 * "callbackKey:<json>" to the app's origin only. Messages from any other origin or window, or with
 * another APP_SID, are ignored.
 */
(function () {
  'use strict';

  var switcher = document.getElementById('as');
  if (switcher) {
    switcher.addEventListener('change', function () { switcher.form.submit(); });
  }

  var dataEl = document.getElementById('b24-frame-data');
  if (!dataEl) { return; }
  var cfg = JSON.parse(dataEl.textContent);
  var frame = document.getElementById('b24-app-frame');
  var logList = document.getElementById('b24-bridge-log');

  function note(text) {
    if (!logList) { return; }
    var li = document.createElement('li');
    li.textContent = text;
    logList.appendChild(li);
  }

  function reply(key, data) {
    frame.contentWindow.postMessage(key + ':' + JSON.stringify(data === undefined ? {} : data), cfg.appOrigin);
  }

  function post(url, body) {
    return fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      credentials: 'same-origin'
    }).then(function (r) { return r.json(); });
  }

  // What Bitrix24's page does with resizeWindow (core rest/applayout.js): the width "100%" is
  // kept, any other becomes whole pixels (100 when it is no number); the height becomes whole
  // pixels and a missing or zero one changes nothing. No maximum; the only minimum is the CSS
  // one of CRM card tabs (600 px, core applayout.css). The answer is the size the frame got.
  // There is no fitWindow message: the library sends resizeWindow for it.
  var handlers = {
    getInitData: function (args, key) { reply(key, cfg.init); },
    resizeWindow: function (args, key) {
      args = args || {};
      var width = args.width === '100%' ? '100%' : (parseInt(args.width, 10) || 100) + 'px';
      var height = parseInt(args.height, 10);
      frame.style.width = width;
      if (height) {
        frame.style.height = height + 'px';
        frame.setAttribute('data-height', String(height));
      }
      var box = frame.getBoundingClientRect();
      reply(key, { width: box.width, height: box.height });
    },
    setTitle: function (args, key) {
      var title = document.getElementById('frame-title');
      if (title && args && args.title) { title.textContent = args.title; }
      reply(key, {});
    },
    refreshAuth: function (args, key) {
      post(cfg.refreshAuthUrl, { app_sid: cfg.appSid }).then(function (data) {
        if (data && data.AUTH_ID) {
          cfg.init.AUTH_ID = data.AUTH_ID;
          cfg.init.REFRESH_ID = data.REFRESH_ID;
          cfg.init.AUTH_EXPIRES = data.AUTH_EXPIRES;
        }
        reply(key, data);
      });
    },
    setInstallFinish: function () {
      if (!cfg.installer) { note('setInstallFinish ignored: not the installer'); return; }
      post(cfg.installFinishUrl, { app_sid: cfg.appSid }).then(function (data) {
        document.body.setAttribute('data-install-finished', data && data.ok ? 'yes' : 'no');
        // Bitrix24 reloads the frame and launches the app (reference §1.2).
        if (data && data.ok) { window.location.assign(cfg.afterInstallUrl); }
      });
    }
  };

  window.addEventListener('message', function (event) {
    if (event.origin !== cfg.appOrigin || event.source !== frame.contentWindow) { return; }
    if (typeof event.data !== 'string') { return; }
    var parts = event.data.split(':');
    if (parts.length < 3) { return; }
    var sid = parts.pop();
    var key = parts.pop();
    var command = parts.shift();
    var raw = parts.join(':');
    if (sid !== cfg.appSid) { return; }
    var args = {};
    if (raw) { try { args = JSON.parse(raw); } catch (e) { args = raw; } }
    note(command);
    var handler = handlers[command];
    if (handler) { handler(args, key); }
  });

  document.getElementById('b24-app-form').submit();
}());

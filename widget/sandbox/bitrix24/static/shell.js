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

  function sizeOf(value, fallback) {
    if (value === undefined || value === null || value === '') { return fallback; }
    return /^\d+(\.\d+)?$/.test(String(value)) ? value + 'px' : String(value);
  }

  var handlers = {
    getInitData: function (args, key) { reply(key, cfg.init); },
    resizeWindow: function (args, key) {
      frame.style.width = sizeOf(args && args.width, '100%');
      frame.style.height = sizeOf(args && args.height, frame.style.height || '600px');
      frame.setAttribute('data-height', String(args && args.height));
      reply(key, { width: args && args.width, height: args && args.height });
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
  handlers.fitWindow = handlers.resizeWindow;

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

/*
 * The sandbox Kommo's stand-in for what our widget's script.js does inside Kommo.
 *
 * For every widget area on the page (#work-area-<code> with data-widget-location):
 *   1. obtain a one-time JWT for the current user -- Kommo's $authorizedAjax does this; here the
 *      sandbox mints it at POST /_sandbox/jwt (HS256 with the client secret, reference §3);
 *   2. POST {location, entity_type?, entity_id?} to <widget origin>/kommo/session with the header
 *      X-Auth-Token -- a cross-origin request, so our server's CORS answer is exercised for real;
 *   3. frame the returned {"url": ...} in an <iframe>, or show the refusal visibly.
 */
(function () {
  'use strict';

  var body = document.body;
  var FRAME_SANDBOX = 'allow-scripts allow-same-origin allow-forms allow-popups ' +
    'allow-popups-to-escape-sandbox allow-downloads allow-modals';

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text) {
      node.textContent = text;
    }
    return node;
  }

  function showStatus(area, text) {
    area.replaceChildren(element('p', 'widget-area__status', text));
  }

  function showError(area, title, detail) {
    var box = element('div', 'widget-error');
    box.setAttribute('role', 'alert');
    box.setAttribute('data-testid', 'widget-error');
    box.appendChild(element('p', 'widget-error__title', title));
    if (detail) {
      box.appendChild(element('p', 'widget-error__detail', detail));
    }
    var retry = element('button', 'button', 'Try again');
    retry.type = 'button';
    retry.addEventListener('click', function () { openWidget(area); });
    box.appendChild(retry);
    area.replaceChildren(box);
  }

  function mountFrame(area, url) {
    var frame = element('iframe', 'widget-area__frame');
    frame.src = url;
    frame.title = 'Wazzup chats';
    frame.setAttribute('allow', 'clipboard-read; clipboard-write');
    frame.setAttribute('sandbox', FRAME_SANDBOX);
    area.replaceChildren(frame);
  }

  function mintToken() {
    return fetch(body.dataset.jwtUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ host: body.dataset.accountHost, user_id: Number(body.dataset.userId) })
    }).then(function (response) {
      if (!response.ok) {
        throw new Error('The sandbox could not mint a widget token (' + response.status + ').');
      }
      return response.json();
    }).then(function (data) { return data.token; });
  }

  function openWidget(area) {
    var request = { location: area.dataset.widgetLocation };
    if (area.dataset.entityType) {
      request.entity_type = area.dataset.entityType;
      request.entity_id = Number(area.dataset.entityId);
    }
    var sessionUrl = body.dataset.sessionUrl;
    showStatus(area, 'Opening Wazzup…');
    mintToken().then(function (token) {
      return fetch(sessionUrl, {
        method: 'POST',
        mode: 'cors',
        headers: { 'X-Auth-Token': token, 'Content-Type': 'application/json' },
        body: JSON.stringify(request)
      }).catch(function () {
        throw new Error('No answer from ' + sessionUrl + ' (server down, or CORS refused this origin: ' +
          window.location.origin + ').');
      });
    }).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try { data = JSON.parse(text); } catch (ignored) { data = null; }
        if (!response.ok) {
          var message = (data && (data.message || data.error)) || text.slice(0, 300);
          throw new Error('POST /kommo/session answered ' + response.status + ': ' + message);
        }
        // Only our own pages may be framed, whatever the answer says (as script.js checks).
        if (!data || typeof data.url !== 'string' || data.url.indexOf(body.dataset.widgetOrigin + '/') !== 0) {
          throw new Error('POST /kommo/session answered without a URL of ' + body.dataset.widgetOrigin + '.');
        }
        mountFrame(area, data.url);
      });
    }).catch(function (error) {
      showError(area, 'Wazzup could not be opened', error.message);
    });
  }

  document.querySelectorAll('[data-widget-location]').forEach(openWidget);

  document.querySelectorAll('select[data-autosubmit]').forEach(function (select) {
    select.addEventListener('change', function () {
      if (select.name === 'account') {
        // Another account has other users: start as its administrator.
        var user = document.getElementById('user-switcher');
        if (user) { user.disabled = true; }
      }
      select.form.submit();
    });
  });

  // Kommo's button script opens its account picker in a 1024x620 window (reference §1.2).
  document.querySelectorAll('a[data-popup]').forEach(function (link) {
    link.addEventListener('click', function (event) {
      var popup = window.open(link.href, 'kommo_oauth', 'width=1024,height=620');
      if (popup) {
        event.preventDefault();
      }
    });
  });
}());

/* Right after an install the CRM's employees and pipelines are read by a background job; a page
   opened before it finished says so (_partials/crm_read.html). This script asks the server where
   the read stands, shows what it answers (reading, or why it failed: the queue tries again, and
   "Refresh CRM data" is there), and once the data is read fills the page and stops asking:
   the list of employees on the CRM tab without a channel, and, through the "wz:crm-data" event,
   whatever else the page keeps (static/settings.js: the roles dialog, pipelines and stages). */
(function () {
  'use strict';

  var box = document.getElementById('crm-read');
  if (!box) return;

  var WAIT_MS = { loading: 1500, failed: 10000 };
  var MAX_ASKS = 400; // about ten minutes of reading, or an hour of failures, then the page waits
  var asks = 0;
  var token = (document.querySelector('meta[name="session-token"]') || {}).content || '';
  // The page's session token is renewed while it is in use (static/app.js): ask with the latest.
  function currentToken() {
    return (window.Widget && window.Widget.sessionToken) || token;
  }
  var emptyRoles = document.getElementById('roles-empty');
  var emptyRolesText = emptyRoles ? emptyRoles.textContent : '';

  function show(state, message) {
    box.setAttribute('data-state', state);
    box.querySelector('[data-field="message"]').textContent = message;
    box.querySelector('[data-field="spinner"]').hidden = state !== 'loading';
    // The roles dialog would say "no employee matches" meanwhile: it says what is happening.
    if (emptyRoles) emptyRoles.textContent = state === 'ready' ? emptyRolesText : message;
  }

  function fillNames(data) {
    var list = document.querySelector('[data-testid="crm-employees"]');
    if (list) {
      list.textContent = '';
      data.employees.forEach(function (e) {
        var li = document.createElement('li');
        li.textContent = e.name;
        if (!e.is_active) li.className = 'inactive';
        list.appendChild(li);
      });
    }
    var counts = document.querySelector('[data-testid="crm-counts"]');
    if (counts && data.summary) counts.textContent = data.summary;
  }

  function ask() {
    asks += 1;
    fetch(box.getAttribute('data-url'), {
      credentials: 'omit',
      headers: { Accept: 'application/json', 'X-Session-Token': currentToken() }
    })
      .then(function (resp) {
        if (window.Widget && window.Widget.noteResponse) window.Widget.noteResponse(resp);
        if (!resp.ok) throw new Error('HTTP ' + resp.status);
        return resp.json();
      })
      .then(
        function (data) {
          show(data.state, data.message);
          if (data.state === 'ready') {
            fillNames(data);
            document.dispatchEvent(new CustomEvent('wz:crm-data', { detail: data }));
            return;
          }
          if (asks < MAX_ASKS) setTimeout(ask, WAIT_MS[data.state] || WAIT_MS.loading);
        },
        function () {
          // Our server did not answer (a restart, the network): keep the message, ask again later.
          if (asks < MAX_ASKS) setTimeout(ask, WAIT_MS.failed);
        }
      );
  }

  show(box.getAttribute('data-state'), box.querySelector('[data-field="message"]').textContent);
  setTimeout(ask, WAIT_MS.loading);
})();

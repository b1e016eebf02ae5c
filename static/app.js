/* Shared behaviour of our pages inside the CRM iframe (CSP: script-src 'self', so no inline code):
   - every XHR carries the session token (X-Session-Token) and the CSRF token (X-CSRFToken),
     because cookies do not reach a third-party iframe;
   - the Bitrix24 frame follows our content's height (static/frame.js; Widget.fit nudges it);
   - forms marked data-dirty-guard warn before the page is left with unsaved changes;
   - forms marked data-xhr-form are sent as XHR and show errors next to their fields;
   - forms with data-confirm ask before they are sent. */
(function () {
  'use strict';

  function meta(name) {
    var el = document.querySelector('meta[name="' + name + '"]');
    return el ? el.getAttribute('content') : '';
  }

  var Widget = (window.Widget = window.Widget || {});
  Widget.sessionToken = meta('session-token');
  Widget.csrfToken = meta('csrf-token');

  /* --- the session token ------------------------------------------------------------------------
     It is short-lived: answers to our XHR carry a fresh one in X-Session-Renewed once it gets old,
     and every place the page keeps it (XHR headers, hidden form fields, links, the history entry)
     takes the new one. It is taken out of the address bar once the page is loaded; the history
     entry keeps it in its state, so Back and reload bring the page back (see restoreSession). */

  var RENEWED = 'X-Session-Renewed';
  var lastRenewal = Date.now();

  function withoutToken(href) {
    var url = new URL(href, window.location.href);
    url.searchParams.delete('st');
    return url.pathname + url.search + url.hash;
  }

  function withToken(href, token) {
    var url = new URL(href, window.location.href);
    url.searchParams.set('st', token);
    return url.pathname + url.search + url.hash;
  }

  function rememberInHistory(token) {
    try {
      window.history.replaceState({ st: token }, '', withoutToken(window.location.href));
    } catch (e) {
      /* a sandboxed frame without history access keeps the address as it is */
    }
  }

  Widget.setSessionToken = function (token) {
    if (!token || token === Widget.sessionToken) return;
    var old = Widget.sessionToken;
    Widget.sessionToken = token;
    lastRenewal = Date.now();
    var tag = document.querySelector('meta[name="session-token"]');
    if (tag) tag.setAttribute('content', token);
    document.querySelectorAll('input[name="st"]').forEach(function (input) {
      input.value = token;
    });
    document.querySelectorAll('a[href*="st="]').forEach(function (link) {
      var url = new URL(link.getAttribute('href'), window.location.href);
      if (url.origin === window.location.origin && url.searchParams.get('st') === old) {
        link.setAttribute('href', withToken(link.getAttribute('href'), token));
      }
    });
    rememberInHistory(token);
  };

  Widget.noteResponse = function (resp) {
    var renewed = resp && resp.headers ? resp.headers.get(RENEWED) : null;
    if (renewed) Widget.setSessionToken(renewed);
    return resp;
  };

  // A page nobody touches still keeps its session: a light call renews it every few minutes
  // (the chat panel's poll does it anyway). When the session has ended, say so in words.
  var KEEPALIVE_MS = 4 * 60 * 1000;
  function keepAlive() {
    if (!Widget.sessionToken || document.hidden || Date.now() - lastRenewal < KEEPALIVE_MS) return;
    fetch('/app/session', {
      credentials: 'omit',
      cache: 'no-store',
      headers: { Accept: 'application/json', 'X-Session-Token': Widget.sessionToken }
    })
      .then(function (resp) {
        Widget.noteResponse(resp);
        lastRenewal = Date.now();
        if (resp.status === 401 || resp.status === 403) {
          return resp.json().then(function (data) {
            Widget.sessionEnded(data.message || '');
          });
        }
      })
      .catch(function () {
        /* offline for a moment: the next round tries again */
      });
  }

  Widget.sessionEnded = function (message) {
    if (!message || document.getElementById('session-ended')) return;
    var box = document.createElement('p');
    box.id = 'session-ended';
    box.className = 'notice notice--error';
    box.setAttribute('role', 'alert');
    box.setAttribute('data-testid', 'session-ended');
    box.textContent = message;
    document.body.insertBefore(box, document.body.firstChild);
    Widget.scheduleFit();
  };

  // An error page for a request that came without its token (Back, or a reload, after the token
  // left the address bar): ask again with the token this history entry kept, once.
  function restoreSession() {
    if (document.body.getAttribute('data-session-lost') !== '1') return false;
    var kept = window.history.state && window.history.state.st;
    var url = new URL(window.location.href);
    if (!kept || url.searchParams.get('st')) return false;
    window.location.replace(withToken(window.location.href, kept));
    return true;
  }

  /* A fresh idempotency key for a message: a resend with the same key is the same message. */
  Widget.newKey = function () {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    var out = '';
    for (var i = 0; i < 32; i++) out += Math.floor(Math.random() * 16).toString(16);
    return out;
  };

  Widget.post = function (url, body) {
    return fetch(url, {
      method: 'POST',
      body: body || new FormData(),
      credentials: 'omit',
      headers: {
        Accept: 'application/json',
        'X-Session-Token': Widget.sessionToken,
        'X-CSRFToken': Widget.csrfToken
      }
    }).then(function (resp) {
      Widget.noteResponse(resp);
      return resp
        .json()
        .catch(function () {
          return {};
        })
        .then(function (data) {
          return { status: resp.status, ok: resp.ok, data: data };
        });
    });
  };

  /* Bitrix24 sizes its frame to our content only when asked: static/frame.js does it (loaded on
     pages in a Bitrix24 frame only) and also notices changes by itself; this is a nudge. */
  Widget.fit = function () {
    if (window.WidgetFrame) window.WidgetFrame.refit();
  };
  var fitTimer = null;
  Widget.scheduleFit = function () {
    clearTimeout(fitTimer);
    fitTimer = setTimeout(Widget.fit, 60);
  };

  /* --- unsaved changes ---------------------------------------------------------------------- */

  // Empty values are left out, so a row added with "no role" does not count as a change.
  Widget.serialize = function (form) {
    var parts = [];
    new FormData(form).forEach(function (value, key) {
      if (key === 'st' || key === 'csrf_token' || value === '') return;
      parts.push(key + '=' + value);
    });
    return parts.sort().join('&');
  };

  var guarded = [];
  Widget.leaving = false;

  Widget.markClean = function (form) {
    form.setAttribute('data-clean-state', Widget.serialize(form));
    Widget.updateDirty();
  };
  Widget.isDirty = function (form) {
    if (form) return Widget.serialize(form) !== form.getAttribute('data-clean-state');
    return guarded.some(function (f) {
      return Widget.isDirty(f);
    });
  };
  Widget.updateDirty = function () {
    var indicator = document.getElementById('unsaved-indicator');
    if (indicator) indicator.hidden = !Widget.isDirty();
  };

  function guard(form) {
    guarded.push(form);
    if (!form.hasAttribute('data-clean-state')) Widget.markClean(form);
    form.addEventListener('input', Widget.updateDirty);
    form.addEventListener('change', Widget.updateDirty);
  }

  // A form really submitted (not turned into XHR by a handler) is how changes are saved: leaving
  // the page then must not warn. Listening on the document sees the handlers' preventDefault.
  document.addEventListener('submit', function (event) {
    if (!event.defaultPrevented && event.target.hasAttribute('data-dirty-guard')) Widget.leaving = true;
  });

  window.addEventListener('beforeunload', function (event) {
    if (Widget.leaving || !Widget.isDirty()) return;
    event.preventDefault();
    event.returnValue = '';
  });

  /* --- errors next to fields ------------------------------------------------------------------ */

  // The slot of "roles.12.role" may be the one of "roles.12": try the key, then its prefixes.
  Widget.errorSlot = function (field) {
    var key = field;
    while (key) {
      var slot = document.querySelector('[data-error-for="' + key.replace(/"/g, '') + '"]');
      if (slot) return slot;
      var cut = key.lastIndexOf('.');
      key = cut > 0 ? key.slice(0, cut) : '';
    }
    return null;
  };

  Widget.clearErrors = function (root) {
    (root || document).querySelectorAll('[data-error-for]').forEach(function (slot) {
      slot.textContent = '';
      slot.hidden = true;
    });
    (root || document).querySelectorAll('[aria-invalid="true"]').forEach(function (el) {
      el.removeAttribute('aria-invalid');
    });
  };

  // Shows each message in its slot; returns the messages that found no slot.
  Widget.showErrors = function (errors) {
    var orphans = [];
    Object.keys(errors || {}).forEach(function (field) {
      var slot = Widget.errorSlot(field);
      if (!slot) {
        orphans.push(errors[field]);
        return;
      }
      slot.textContent = errors[field];
      slot.hidden = false;
      var control = document.querySelector('[aria-describedby~="' + slot.id + '"]');
      if (control) control.setAttribute('aria-invalid', 'true');
    });
    Widget.scheduleFit();
    return orphans;
  };

  // ``extra`` lines take ``extraKind`` when given (e.g. warnings under "Settings saved."), else ``kind``.
  Widget.status = function (text, kind, extra, extraKind) {
    var box = document.getElementById('form-status');
    if (!box) return;
    box.textContent = '';
    var span = document.createElement('span');
    span.className = kind || 'ok';
    span.textContent = text;
    box.appendChild(span);
    (extra || []).forEach(function (line) {
      var more = document.createElement('span');
      more.className = 'more ' + (extraKind || kind || 'ok');
      more.textContent = line;
      box.appendChild(more);
    });
    Widget.scheduleFit();
  };

  function xhrForm(form) {
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      Widget.clearErrors(form);
      Widget.post(form.action, new FormData(form))
        .then(function (r) {
          if (r.ok) {
            Widget.markClean(form);
            Widget.status(r.data.message || '', 'ok');
          } else if (r.status === 422) {
            var orphans = Widget.showErrors(r.data.errors);
            Widget.status(r.data.message || '', 'error', orphans);
          } else {
            Widget.status(r.data.message || form.getAttribute('data-failed') || 'Error', 'error');
          }
        })
        .catch(function () {
          Widget.status(form.getAttribute('data-failed') || 'Error', 'error');
        });
    });
  }

  document.addEventListener('DOMContentLoaded', function () {
    if (restoreSession()) return;
    if (Widget.sessionToken) {
      rememberInHistory(Widget.sessionToken);
      setInterval(keepAlive, 30 * 1000);
    }
    document.querySelectorAll('form[data-dirty-guard]').forEach(guard);
    document.querySelectorAll('form[data-xhr-form]').forEach(xhrForm);
    document.querySelectorAll('form[data-confirm]').forEach(function (form) {
      form.addEventListener('submit', function (event) {
        if (!window.confirm(form.getAttribute('data-confirm'))) event.preventDefault();
      });
    });
    // The admin pages' top panel is sticky: whatever gets focus or is scrolled to (the first field
    // with a problem, "Select roles") must land below it, not under it. Its height changes with the
    // status line, so keep the scroll padding in step.
    var panel = document.querySelector('.toppanel');
    if (panel && window.ResizeObserver) {
      new ResizeObserver(function () {
        document.documentElement.style.scrollPaddingTop = panel.offsetHeight + 8 + 'px';
      }).observe(panel);
    }
    Widget.fit();
  });
})();

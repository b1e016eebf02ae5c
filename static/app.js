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

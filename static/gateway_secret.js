/* The "Messaging gateway" section of the Channels page: "Show" and "Copy" of the signing secret.
   The secret is not in the page; it is asked for (POST with the session and CSRF tokens) the first
   time it is needed and kept only in the field. Copying uses the Clipboard API where the CRM's
   frame allows it, else the browser's copy command on the selected field; when both are refused
   the secret is left shown and selected for the admin to copy by hand. */
(function () {
  'use strict';

  var W = window.Widget;

  function copySelected(input) {
    input.focus();
    input.select();
    input.setSelectionRange(0, input.value.length);
    try {
      return document.execCommand('copy');
    } catch (e) {
      return false;
    }
  }

  function copyText(input) {
    var text = input.value;
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).then(
        function () {
          return true;
        },
        function () {
          return copySelected(input);
        }
      );
    }
    return Promise.resolve(copySelected(input));
  }

  document.addEventListener('DOMContentLoaded', function () {
    var section = document.getElementById('gateway');
    if (!section) return;
    var field = document.getElementById('gateway-secret');
    var show = document.getElementById('gateway-secret-show');
    var copy = document.getElementById('gateway-secret-copy');
    var status = document.getElementById('gateway-secret-status');
    var text = function (name) {
      return section.getAttribute('data-' + name) || '';
    };

    function say(message, kind) {
      status.textContent = message;
      status.className = 'small ' + (kind || 'ok');
      W.scheduleFit();
    }

    function secret() {
      if (field.value) return Promise.resolve(field.value);
      return W.post(section.getAttribute('data-reveal-url')).then(function (r) {
        if (!r.ok || !r.data.secret) throw r;
        field.value = r.data.secret;
        return field.value;
      });
    }

    function setShown(shown) {
      field.type = shown ? 'text' : 'password';
      show.textContent = shown ? text('hide') : text('show');
      show.setAttribute('aria-pressed', String(shown));
    }

    show.addEventListener('click', function () {
      if (field.type === 'text') {
        setShown(false);
        return;
      }
      secret().then(
        function () {
          setShown(true);
          say('');
        },
        function (r) {
          say((r && r.data && r.data.message) || text('failed'), 'error');
        }
      );
    });

    copy.addEventListener('click', function () {
      secret()
        .then(function () {
          // The copy command copies only what is visible: show the field while it copies.
          var wasShown = field.type === 'text';
          setShown(true);
          return copyText(field).then(function (ok) {
            if (ok) {
              if (!wasShown) setShown(false);
              say(text('copied'));
            } else {
              say(text('copy-failed'), 'error');
            }
          });
        })
        .catch(function (r) {
          say((r && r.data && r.data.message) || text('failed'), 'error');
        });
    });

    section.querySelectorAll('[data-copy-target]').forEach(function (button) {
      button.addEventListener('click', function () {
        var target = document.getElementById(button.getAttribute('data-copy-target'));
        copyText(target).then(function (ok) {
          say(ok ? text('copied') : text('copy-failed'), ok ? 'ok' : 'error');
        });
      });
    });
  });
})();

/*
 * Wazzup chats for Kommo.
 *
 * The widget itself shows nothing but our own pages, in an iframe:
 *   - the left-menu page ("Wazzup chats")        -> the global chat panel,
 *   - the page under Settings (advanced settings) -> the "CRM integration" settings,
 *   - the lead card's right panel                 -> the chats of that lead.
 *
 * Each time, it asks our server for a short-lived page address with $authorizedAjax, which adds
 * Kommo's signed X-Auth-Token for the current user (reference §3); the server trusts only that
 * token, never values sent from here. The address opens once and expires in two minutes, so it
 * is fetched again every time a page is shown and never stored.
 */
define(['jquery'], function ($) {
  'use strict';

  // build:begin — written by `python -m widget.tools.kommo_widget build`
  var BUILD = {
    origin: "http://127.0.0.1:5000",
    supportEmail: "support@wazzup.example"
  };
  // build:end

  var ROOT_CLASS = 'wazzup-chats';
  var SESSION_PATH = '/kommo/session';
  var REQUEST_TIMEOUT_MS = 20000;

  return function () {
    var self = this;
    // Bumped whenever the widget leaves a page, so a late answer is not shown in the wrong place.
    var generation = 0;

    function i18nText(path) {
      var parts = path.split('.');
      var value = self.i18n(parts.shift());
      while (parts.length && value) {
        value = value[parts.shift()];
      }
      return typeof value === 'string' ? value : path;
    }

    function widgetCode() {
      return self.params.widget_code || self.get_settings().widget_code;
    }

    function currentArea() {
      var system = typeof self.system === 'function' ? self.system() : null;
      return (system && system.area) || '';
    }

    function loadStyles() {
      if ($('link[data-wazzup-chats-style]').length) {
        return;
      }
      var version = typeof self.get_version === 'function' ? self.get_version() : '';
      $('head').append(
        $('<link>', {
          rel: 'stylesheet',
          type: 'text/css',
          href: self.params.path + '/style.css?v=' + encodeURIComponent(version || ''),
          'data-wazzup-chats-style': '1'
        })
      );
    }

    function makeRoot(modifier) {
      return $('<div>', { 'class': ROOT_CLASS + ' ' + ROOT_CLASS + '--' + modifier });
    }

    function showNotice($root, message, modifier) {
      $root.empty().append(
        $('<div>', { 'class': ROOT_CLASS + '__notice ' + ROOT_CLASS + '__notice--' + modifier }).text(message)
      );
    }

    function isOurAddress(url) {
      // Only our own pages may be framed, whatever a response says.
      return typeof url === 'string' && url.indexOf(BUILD.origin + '/') === 0;
    }

    function reasonFor(status) {
      if (!status) {
        return i18nText('errors.network');
      }
      if (status === 401) {
        return i18nText('errors.session');
      }
      if (status === 403) {
        return i18nText('errors.denied');
      }
      return i18nText('errors.server');
    }

    function showError($root, request, status, detail) {
      var block = ROOT_CLASS + '__error';
      var $error = $('<div>', { 'class': block, role: 'alert' });
      $error.append($('<p>', { 'class': block + '-title' }).text(i18nText('errors.title')));
      $error.append($('<p>').text(reasonFor(status)));
      if (detail) {
        $error.append($('<p>', { 'class': block + '-detail' }).text(i18nText('errors.reason') + ' ' + detail));
      }
      $error.append(
        $('<button>', { type: 'button', 'class': 'button-input ' + ROOT_CLASS + '__retry' })
          .text(i18nText('errors.retry'))
          .on('click', function () {
            openFrame($root, request);
          })
      );
      $error.append(
        $('<p>', { 'class': block + '-contact' })
          .text(i18nText('errors.contact') + ' ')
          .append($('<a>', { href: 'mailto:' + BUILD.supportEmail }).text(BUILD.supportEmail))
      );
      $root.empty().append($error);
    }

    function mountFrame($root, url) {
      $root.empty().append(
        $('<iframe>', {
          'class': ROOT_CLASS + '__frame',
          src: url,
          title: i18nText('panel.frame_title'),
          allow: 'clipboard-read; clipboard-write',
          // Our pages need their scripts and forms; they may not navigate or script Kommo's page.
          sandbox: 'allow-scripts allow-same-origin allow-forms allow-popups ' +
            'allow-popups-to-escape-sandbox allow-downloads allow-modals'
        })
      );
    }

    // Asks our server for the page address and shows it in $root. `request` is the JSON body of
    // POST /kommo/session: {location, entity_type?, entity_id?}.
    function openFrame($root, request) {
      var mine = generation;
      if (typeof self.$authorizedAjax !== 'function') {
        // Kommo gives the signed token to OAuth integrations only (reference §3).
        showError($root, request, 401, '');
        return;
      }
      showNotice($root, i18nText('panel.loading'), 'loading');
      self.$authorizedAjax({
        url: BUILD.origin + SESSION_PATH,
        type: 'POST',
        contentType: 'application/json',
        data: JSON.stringify(request),
        dataType: 'json',
        timeout: REQUEST_TIMEOUT_MS
      }).then(
        function (answer) {
          if (mine !== generation) {
            return;
          }
          if (answer && isOurAddress(answer.url)) {
            mountFrame($root, answer.url);
          } else {
            showError($root, request, 500, answer && answer.message);
          }
        },
        function (xhr) {
          if (mine !== generation) {
            return;
          }
          var body = (xhr && xhr.responseJSON) || {};
          showError($root, request, (xhr && xhr.status) || 0, body.message || '');
        }
      );
    }

    function openPage(location) {
      loadStyles();
      var $root = makeRoot('page');
      $('#work-area-' + widgetCode()).empty().append($root);
      openFrame($root, { location: location });
    }

    function renderCardPanel() {
      var panelId = ROOT_CLASS + '-card-' + widgetCode();
      self.render_template({
        caption: { class_name: ROOT_CLASS + '__caption' },
        body: '',
        render: '<div id="' + panelId + '" class="' + ROOT_CLASS + ' ' + ROOT_CLASS + '--card"></div>'
      });
      var $root = $('#' + panelId);
      var card = APP.data && APP.data.current_card;
      var leadId = card ? Number(card.id) : 0;
      if (!leadId) {
        // A new card has id 0: there is no lead yet, so there are no chats to show.
        showNotice($root, i18nText('panel.unsaved_card'), 'info');
        return;
      }
      openFrame($root, { location: 'lcard', entity_type: 'lead', entity_id: leadId });
    }

    this.callbacks = {
      render: function () {
        loadStyles();
        if (currentArea() === 'lcard') {
          renderCardPanel();
        }
        return true;
      },

      init: function () {
        return true;
      },

      bind_actions: function () {
        return true;
      },

      // The widget's modal in Settings: no fields to fill (the account is connected through
      // OAuth), just where to find things. Kept above Kommo's own buttons.
      settings: function ($modal) {
        var $block = $('.modal.' + widgetCode() + ' .widget_settings_block');
        var $target = $block.length ? $block : $($modal);
        $target.find('.' + ROOT_CLASS).remove();
        $target.prepend(
          makeRoot('settings').append($('<p>', { 'class': ROOT_CLASS + '__intro' }).text(i18nText('settings.intro')))
        );
        return true;
      },

      // Also fires when the widget is disabled; nothing of ours is saved here.
      onSave: function () {
        return true;
      },

      destroy: function () {
        generation += 1;
        $('.' + ROOT_CLASS).remove();
      },

      advancedSettings: function () {
        generation += 1;
        openPage('advanced_settings');
        return true;
      },

      initMenuPage: function () {
        generation += 1;
        openPage('widget_page');
        return true;
      }
    };

    return this;
  };
});

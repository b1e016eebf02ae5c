/* "New conversation" in a CRM card's chat panel: asks the server what this employee may do to write
   first to the card's client (the server reads the CRM and applies the roles), shows the channels
   that can start one (the default channel proposed), the ones that cannot and why, and sends the
   first message. A chat the client already has is opened instead, with the typed text kept.
   The chat panel (static/chats.js) takes over through the "chats:open" event. Texts come from the
   server (#start-data); names from the CRM are put in the page as text. */
(function () {
  'use strict';

  var W = window.Widget;
  var data, t;
  var plan = null;
  var key = null;
  var busy = false;

  function $(id) {
    return document.getElementById(id);
  }

  function fmt(text, values) {
    return String(text).replace(/%\((\w+)\)s/g, function (_m, k) {
      return values[k] === undefined ? '' : String(values[k]);
    });
  }

  function api(method, body) {
    var headers = { Accept: 'application/json', 'X-Session-Token': W.sessionToken };
    if (method !== 'GET') {
      headers['X-CSRFToken'] = W.csrfToken;
      headers['Content-Type'] = 'application/json';
    }
    return fetch(data.url, {
      method: method,
      headers: headers,
      body: body ? JSON.stringify(body) : undefined,
      credentials: 'omit',
      cache: 'no-store'
    }).then(function (resp) {
      return resp
        .json()
        .catch(function () {
          return {};
        })
        .then(function (json) {
          return { status: resp.status, ok: resp.ok, data: json };
        });
    });
  }

  function say(text, kind) {
    var box = $('start-status');
    box.textContent = text || '';
    box.className = 'start-status' + (kind ? ' start-status--' + kind : '');
    W.scheduleFit();
  }

  function option(id) {
    return (plan ? plan.options : []).filter(function (o) {
      return o.channel.id === id;
    })[0];
  }

  function channelLabel(o) {
    var label = o.channel.name + ' · ' + (t.transports[o.channel.transport] || o.channel.transport);
    return o.action === 'open' ? fmt(t.open_existing, { channel: label }) : label;
  }

  function pickChannel() {
    var o = option(Number($('start-channel').value));
    var address = $('start-address');
    address.textContent = '';
    var starts = !!o && o.action === 'start';
    (starts ? o.addresses : []).forEach(function (a) {
      var opt = document.createElement('option');
      opt.value = a.key;
      opt.textContent = a.label;
      address.appendChild(opt);
    });
    $('start-address-field').hidden = !starts;
    $('start-send').hidden = !starts;
    $('start-open').hidden = starts || !o;
    say(o && o.action === 'open' ? t.existing : '');
  }

  function render(p) {
    plan = p;
    key = W.newKey();
    var client = fmt(t.to, { name: p.client.name });
    if (p.client.responsible) client += ' · ' + fmt(t.responsible, { name: p.client.responsible });
    $('start-client').textContent = client;
    var usable = p.options.filter(function (o) {
      return o.action !== 'none';
    });
    var blocked = p.options.filter(function (o) {
      return o.action === 'none';
    });
    var select = $('start-channel');
    select.textContent = '';
    usable.forEach(function (o) {
      var opt = document.createElement('option');
      opt.value = String(o.channel.id);
      opt.textContent = channelLabel(o);
      opt.selected = o.channel.id === p.default_channel_id;
      select.appendChild(opt);
    });
    $('start-form').hidden = usable.length === 0;
    var summary = $('start-summary');
    summary.textContent = p.summary || '';
    summary.hidden = !p.summary;
    var list = $('start-unavailable');
    list.textContent = '';
    blocked.forEach(function (o) {
      var li = document.createElement('li');
      li.setAttribute('data-testid', 'start-reason');
      li.setAttribute('data-channel-id', String(o.channel.id));
      var name = document.createElement('strong');
      name.textContent = o.channel.name + ': ';
      li.appendChild(name);
      li.appendChild(document.createTextNode(o.reason));
      list.appendChild(li);
    });
    $('start-unavailable-box').hidden = blocked.length === 0;
    if (usable.length) pickChannel();
    else say('');
    W.scheduleFit();
  }

  function load() {
    plan = null;
    $('start-form').hidden = true;
    $('start-summary').hidden = true;
    $('start-unavailable-box').hidden = true;
    $('start-client').textContent = '';
    say(t.loading);
    api('GET')
      .then(function (r) {
        if (r.ok) render(r.data);
        else say(r.data.message || t.failed, 'error');
      })
      .catch(function () {
        say(t.failed, 'error');
      });
  }

  function show() {
    $('conv-placeholder').hidden = true;
    $('conv-body').hidden = true;
    $('conv-start').hidden = false;
    $('chats').classList.add('has-open');
    load();
  }

  function hide() {
    $('conv-start').hidden = true;
    $('chats').classList.remove('has-open');
    if ($('conv-body').hidden) $('conv-placeholder').hidden = false;
  }

  function handOver(chatId, text, notice) {
    $('conv-start').hidden = true;
    $('conv-placeholder').hidden = true;
    document.dispatchEvent(new CustomEvent('chats:open', { detail: { id: chatId, text: text, notice: notice } }));
  }

  function send(event) {
    event.preventDefault();
    if (busy || !plan) return;
    var box = $('start-text');
    var text = box.value.trim();
    if (!text) {
      say(t.empty_text, 'error');
      return;
    }
    busy = true;
    $('start-send').disabled = true;
    say(t.sending);
    api('POST', {
      channel_id: Number($('start-channel').value),
      address: $('start-address').value || undefined,
      text: text,
      idempotency_key: key
    })
      .then(function (r) {
        if (r.ok && r.data.status === 'started') {
          box.value = '';
          handOver(r.data.chat_id, '', '');
        } else if (r.ok && r.data.status === 'open') {
          // Somebody (or the client) was first: the chat opens with this text still unsent in it.
          box.value = '';
          handOver(r.data.chat_id, text, r.data.message);
        } else {
          say(r.data.message || t.failed, 'error'); // the text stays in the box
        }
      })
      .catch(function () {
        say(t.failed, 'error');
      })
      .then(function () {
        busy = false;
        $('start-send').disabled = false;
      });
  }

  document.addEventListener('DOMContentLoaded', function () {
    var holder = $('start-data');
    if (!holder) return;
    data = JSON.parse(holder.textContent);
    t = data.i18n;
    $('start-new').addEventListener('click', show);
    $('start-back').addEventListener('click', hide);
    $('start-channel').addEventListener('change', pickChannel);
    $('start-form').addEventListener('submit', send);
    $('start-open').addEventListener('click', function () {
      var o = option(Number($('start-channel').value));
      if (!o || !o.chat_id) return;
      var text = $('start-text').value.trim();
      $('start-text').value = '';
      handOver(o.chat_id, text, '');
    });
    // Choosing a chat in the list leaves "New conversation".
    $('chat-list').addEventListener('click', function () {
      $('conv-start').hidden = true;
    });
  });
})();

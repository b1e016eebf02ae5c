/* The chat panel: the list of chats on the left, one conversation on the right (one pane at a time
   in a narrow CRM card). The first data is embedded in the page; then the panel polls the JSON API
   every ~2 s with If-None-Match, so an unchanged list costs a bodiless 304.

   The server decides every rule (who sees, who may write, who took a new client); this script
   only shows its answers. Names and texts from clients and the CRM are put into the page as text
   (textContent), never as HTML. */
(function () {
  'use strict';

  var W = window.Widget;
  var data, t, urls;
  var state = {
    chats: [],
    cursor: null,
    listTag: '',
    filter: 'all',
    openId: null,
    chatTag: '',
    chat: null,
    messages: [],
    olderCursor: null,
    key: null,
    access: null,
    unsent: null,
    busy: false,
    stopped: false,
    failures: 0,
    timer: null
  };

  function $(id) {
    return document.getElementById(id);
  }

  function fmt(text, values) {
    return String(text).replace(/%\((\w+)\)s/g, function (_m, key) {
      return values[key] === undefined ? '' : String(values[key]);
    });
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function withScope(url, extra) {
    var params = new URLSearchParams();
    if (data.scope) {
      params.set('entity_type', data.scope.entity_type);
      params.set('entity_id', data.scope.entity_id);
    }
    Object.keys(extra || {}).forEach(function (k) {
      if (extra[k] !== null && extra[k] !== undefined) params.set(k, extra[k]);
    });
    var q = params.toString();
    return q ? url + (url.indexOf('?') < 0 ? '?' : '&') + q : url;
  }

  function api(method, url, body, etag) {
    var headers = { Accept: 'application/json', 'X-Session-Token': W.sessionToken };
    if (method !== 'GET') {
      headers['X-CSRFToken'] = W.csrfToken;
      headers['Content-Type'] = 'application/json';
    }
    if (etag) headers['If-None-Match'] = etag;
    return fetch(url, {
      method: method,
      headers: headers,
      body: body ? JSON.stringify(body) : undefined,
      credentials: 'omit',
      cache: 'no-store'
    }).then(function (resp) {
      W.noteResponse(resp); // a renewed session token, when the old one got old
      if (resp.status === 304) return { status: 304, ok: true, data: null, etag: resp.headers.get('ETag') || etag };
      return resp
        .json()
        .catch(function () {
          return {};
        })
        .then(function (json) {
          return { status: resp.status, ok: resp.ok, data: json, etag: resp.headers.get('ETag') || '' };
        });
    });
  }

  /* --- time -------------------------------------------------------------------------------------- */

  var lang = document.documentElement.lang || 'en';
  function when(iso, withTime) {
    var d = new Date(iso);
    var now = new Date();
    var time = d.toLocaleTimeString(lang, { hour: '2-digit', minute: '2-digit' });
    if (d.toDateString() === now.toDateString()) return time;
    var yesterday = new Date(now.getTime() - 86400000);
    if (d.toDateString() === yesterday.toDateString()) return withTime ? t.yesterday + ' ' + time : t.yesterday;
    var date = d.toLocaleDateString(lang, { day: 'numeric', month: 'short' });
    return withTime ? date + ' ' + time : date;
  }

  var TRANSPORTS = { whatsapp: 'WhatsApp', waba: 'WABA', telegram: 'Telegram', instagram: 'Instagram' };

  function initials(title) {
    var parts = String(title || '?').trim().split(/\s+/);
    return ((parts[0] || '?').charAt(0) + (parts.length > 1 ? parts[parts.length - 1].charAt(0) : '')).toUpperCase();
  }

  /* --- the list ------------------------------------------------------------------------------------ */

  function counterBadge(chat) {
    if (!chat.counter) return null;
    var n = chat.unanswered_count > 99 ? '99+' : String(chat.unanswered_count || 1);
    var badge = el('span', 'counter counter--' + chat.counter, n);
    badge.setAttribute('data-testid', 'chat-counter');
    badge.setAttribute('data-counter', chat.counter);
    badge.title = chat.counter === 'red' ? t.red_title : t.grey_title;
    return badge;
  }

  function chatItem(chat) {
    var li = el('li', 'chat-item');
    li.setAttribute('data-chat-id', chat.id);
    li.setAttribute('data-testid', 'chat-item');
    if (chat.counter === 'red') li.classList.add('is-red');
    var button = el('button', 'chat-item-btn');
    button.type = 'button';
    button.addEventListener('click', function () {
      openChat(chat.id);
    });
    var avatar = el('span', 'avatar avatar--' + (chat.channel.transport || 'x'), initials(chat.title));
    avatar.setAttribute('aria-hidden', 'true');
    var main = el('span', 'chat-item-main');
    var top = el('span', 'chat-item-top');
    var title = el('span', 'chat-title', chat.title || chat.phone || t.client);
    title.setAttribute('data-testid', 'chat-title');
    top.appendChild(title);
    top.appendChild(el('span', 'chat-time', when(chat.last_message_at, false)));
    var bottom = el('span', 'chat-item-bottom');
    var preview = el('span', 'chat-preview', (chat.last_direction === 'out' ? '\u21b3 ' : '') + chat.preview);
    bottom.appendChild(preview);
    var badge = counterBadge(chat);
    if (badge) bottom.appendChild(badge);
    var meta = el('span', 'chat-meta');
    meta.appendChild(el('span', 'transport transport--' + chat.channel.transport, TRANSPORTS[chat.channel.transport] || chat.channel.transport));
    meta.appendChild(el('span', 'chat-channel', chat.channel.name));
    if (chat.offered) {
      var tag = el('span', 'tag tag--offer', t.offer);
      tag.setAttribute('data-testid', 'offer-tag');
      meta.appendChild(tag);
    } else if (chat.responsible) {
      meta.appendChild(el('span', 'chat-resp', chat.responsible));
    }
    main.appendChild(top);
    main.appendChild(bottom);
    main.appendChild(meta);
    button.appendChild(avatar);
    button.appendChild(main);
    li.appendChild(button);
    return li;
  }

  function count(n) {
    return n >= 1000 ? '999+' : String(n); // the server stops counting at 1000
  }

  function renderTotals(totals) {
    var red = $('total-red');
    var grey = $('total-grey');
    red.textContent = count(totals.red);
    grey.textContent = count(totals.grey);
    red.hidden = !totals.red;
    grey.hidden = !totals.grey;
  }

  /* Re-rendering keeps the elements of items that did not change (keyed by id, compared by their
     data), so a poll never swaps a button out from under the pointer between press and release. */
  function keyed(container, items, keyOf, build) {
    var old = {};
    Array.prototype.forEach.call(container.children, function (node) {
      old[node.getAttribute('data-key')] = node;
    });
    var at = 0;
    items.forEach(function (item) {
      var key = String(keyOf(item));
      var sig = JSON.stringify(item);
      var node = old[key];
      if (node && node.getAttribute('data-sig') !== sig) {
        container.removeChild(node); // changed: its fresh version takes its place below
        node = null;
      }
      if (!node) {
        node = build(item);
        node.setAttribute('data-key', key);
        node.setAttribute('data-sig', sig);
      }
      delete old[key];
      var here = container.children[at];
      if (here !== node) container.insertBefore(node, here || null);
      at++;
    });
    Object.keys(old).forEach(function (key) {
      if (old[key].parentNode === container) container.removeChild(old[key]);
    });
  }

  function renderList() {
    var list = $('chat-list');
    keyed(
      list,
      state.chats,
      function (chat) {
        return chat.id;
      },
      chatItem
    );
    list.querySelectorAll('.chat-item').forEach(function (li) {
      li.classList.toggle('is-open', Number(li.getAttribute('data-chat-id')) === state.openId);
    });
    var empty = $('chats-empty');
    empty.hidden = state.chats.length > 0;
    // No role on any channel: say so, and who can give one, rather than "no chats yet".
    var noRole = state.access && !state.access.has_role ? state.access.message : '';
    var none = data.scope ? t.empty_card : state.filter === 'unanswered' ? t.empty_unanswered : t.empty;
    empty.textContent = noRole || none;
    empty.setAttribute('data-reason', noRole ? 'no-role' : 'empty');
    $('more-chats').hidden = !state.cursor;
    W.scheduleFit();
  }

  function applyList(payload, keepOlder) {
    var fresh = payload.chats;
    state.access = payload.access || null;
    if (keepOlder && state.chats.length > fresh.length) {
      // The poll re-reads the first page; older pages the user loaded stay below it.
      var seen = {};
      fresh.forEach(function (c) {
        seen[c.id] = true;
      });
      var last = fresh.length ? fresh[fresh.length - 1].last_message_at : null;
      state.chats = fresh.concat(
        state.chats.filter(function (c) {
          return !seen[c.id] && (last === null || c.last_message_at <= last);
        })
      );
    } else {
      state.chats = fresh;
      state.cursor = payload.next_cursor;
    }
    renderTotals(payload.totals);
    renderList();
    // "The test client is writing…" ends when its chat is in the list.
    var notice = document.querySelector('[data-testid="test-message-notice"][data-status="pending"]');
    if (notice && state.chats.some(function (c) { return c.title === data.test_client; })) notice.hidden = true;
  }

  function loadList() {
    var url = withScope(urls.list, { filter: state.filter === 'all' ? null : state.filter });
    return api('GET', url, null, state.listTag).then(function (r) {
      if (r.status === 304) {
        state.listTag = r.etag; // the server may renew it: the list came out the same after a change
        return;
      }
      if (!r.ok) throw r;
      state.listTag = r.etag;
      applyList(r.data, true);
    });
  }

  function loadOlderChats() {
    if (!state.cursor) return;
    var url = withScope(urls.list, { before: state.cursor, filter: state.filter === 'all' ? null : state.filter });
    api('GET', url).then(function (r) {
      if (!r.ok) return;
      var seen = {};
      state.chats.forEach(function (c) {
        seen[c.id] = true;
      });
      state.chats = state.chats.concat(
        r.data.chats.filter(function (c) {
          return !seen[c.id];
        })
      );
      state.cursor = r.data.next_cursor;
      renderList();
    });
  }

  /* --- one conversation ------------------------------------------------------------------------------- */

  function statusLine(m) {
    var line = el('span', 'msg-status msg-status--' + m.status);
    line.setAttribute('data-testid', 'msg-status');
    line.setAttribute('data-status', m.status);
    if (m.status === 'sending') line.textContent = m.error ? fmt(t.retrying, { reason: m.error }) : t.sending;
    else if (m.status === 'sent') line.textContent = '\u2713 ' + t.sent;
    else if (m.status === 'failed') {
      line.textContent = t.failed + (m.error ? ': ' + m.error : '') + ' ';
      if (state.chat && state.chat.write.allowed) {
        var retry = el('button', 'link-btn', t.retry);
        retry.type = 'button';
        retry.setAttribute('data-testid', 'retry');
        retry.addEventListener('click', function () {
          api('POST', urls.retry.replace('__ID__', m.id), {}).then(refreshChat);
        });
        line.appendChild(retry);
      }
    }
    return line;
  }

  function messageItem(m) {
    var li = el('li', 'msg msg--' + m.direction + (m.mine ? ' msg--mine' : ''));
    li.setAttribute('data-message-id', m.id);
    li.setAttribute('data-testid', 'message');
    li.setAttribute('data-direction', m.direction);
    var bubble = el('div', 'bubble');
    if (m.direction === 'out' && m.author) bubble.appendChild(el('div', 'msg-author', m.mine ? t.you : m.author));
    bubble.appendChild(el('div', 'msg-text', m.text));
    var foot = el('div', 'msg-foot');
    foot.appendChild(el('time', 'msg-time', when(m.sent_at, true)));
    if (m.direction === 'out' && m.status) foot.appendChild(statusLine(m));
    bubble.appendChild(foot);
    li.appendChild(bubble);
    return li;
  }

  function renderMessages(stickToBottom) {
    var scroller = $('conv-scroll');
    var atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
    keyed(
      $('messages'),
      state.messages,
      function (m) {
        return m.id;
      },
      messageItem
    );
    $('older').hidden = !state.olderCursor;
    if (stickToBottom || atBottom) scroller.scrollTop = scroller.scrollHeight;
  }

  function alertBox(text) {
    var box = $('conv-alert');
    box.textContent = text || '';
    box.hidden = !text;
  }

  function renderChat(stickToBottom) {
    var chat = state.chat;
    $('conv-placeholder').hidden = true;
    $('conv-body').hidden = false;
    $('conv-title').textContent = chat.title || chat.phone || t.client;
    $('conv-avatar').textContent = initials(chat.title);
    $('conv-avatar').className = 'avatar avatar--' + (chat.channel.transport || 'x');
    var sub = [TRANSPORTS[chat.channel.transport] || chat.channel.transport, chat.channel.name];
    if (chat.phone) sub.unshift(chat.phone);
    if (chat.responsible) sub.push(fmt(t.responsible, { name: chat.responsible }));
    $('conv-sub').textContent = sub.join(' \u00b7 ');
    var banner = $('offer-banner');
    banner.hidden = !chat.offered;
    // Whoever cannot write (quality control) is not told they could take it.
    banner.textContent = chat.offered ? (chat.write.allowed ? t.offer_banner : t.offer_banner_watch) : '';
    var composer = $('composer');
    var off = $('composer-off');
    composer.hidden = !chat.write.allowed;
    off.hidden = chat.write.allowed;
    off.textContent = chat.write.allowed ? '' : chat.write.reason;
    $('no-reply').hidden = !(chat.unanswered && chat.write.no_reply);
    renderMessages(stickToBottom);
    document.querySelectorAll('.chat-item').forEach(function (li) {
      li.classList.toggle('is-open', Number(li.getAttribute('data-chat-id')) === chat.id);
    });
    $('chats').classList.add('has-open');
    W.scheduleFit();
  }

  /* A reply the server refused (the client was taken first) stays on screen to copy until the
     employee dismisses it: polls, the list and other chats never clear it. */
  function renderUnsent() {
    var unsent = state.unsent;
    $('unsent').hidden = !unsent;
    if (unsent) {
      $('unsent-title').textContent = fmt(t.unsent_title, { name: unsent.title });
      if ($('unsent-text').value !== unsent.text) $('unsent-text').value = unsent.text;
    }
    $('unsent-status').textContent = '';
    W.scheduleFit();
  }

  function keepUnsent(text, title) {
    state.unsent = { text: text, title: title };
    renderUnsent();
  }

  function copyUnsent() {
    var box = $('unsent-text');
    var done = function () {
      $('unsent-status').textContent = t.copied;
    };
    var byHand = function () {
      // The frame may not be allowed the clipboard API: select the text and copy it the old way.
      box.focus();
      box.select();
      var ok = false;
      try {
        ok = document.execCommand('copy');
      } catch (e) {
        ok = false;
      }
      $('unsent-status').textContent = ok ? t.copied : t.copy_by_hand;
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(box.value).then(done, byHand);
    } else {
      byHand();
    }
  }

  function closeChat(message) {
    state.openId = null;
    state.chat = null;
    state.chatTag = '';
    $('conv-body').hidden = !message;
    $('conv-placeholder').hidden = !!message;
    if (message) {
      // What this employee may no longer see goes away; only the reason stays.
      $('composer').hidden = true;
      $('composer-off').hidden = true;
      $('no-reply').hidden = true;
      $('offer-banner').hidden = true;
      $('messages').textContent = '';
      $('older').hidden = true;
      alertBox(message);
    }
    // With something to say (why the chat went away), its pane stays in front on a narrow card.
    $('chats').classList.toggle('has-open', !!message);
  }

  function applyChat(payload, stickToBottom) {
    state.chat = payload.chat;
    state.messages = payload.messages;
    state.olderCursor = payload.older_cursor;
    renderChat(stickToBottom);
  }

  function openChat(id) {
    if (state.openId !== id) {
      state.key = W.newKey();
      alertBox('');
      $('composer-text').value = '';
    }
    state.openId = id;
    state.chatTag = '';
    api('GET', urls.chat.replace('__ID__', id) + '?refresh=1').then(function (r) {
      if (state.openId !== id) return;
      if (r.ok) {
        state.chatTag = r.etag;
        applyChat(r.data, true);
        $('composer-text').focus();
      } else {
        closeChat(r.data.message || t.gone);
      }
    });
  }

  function refreshChat() {
    var id = state.openId;
    if (!id) return Promise.resolve();
    return api('GET', urls.chat.replace('__ID__', id), null, state.chatTag).then(function (r) {
      if (state.openId !== id || r.status === 304) return;
      if (r.ok) {
        state.chatTag = r.etag;
        applyChat(r.data, false);
      } else if (r.status === 403 || r.status === 404) {
        // Taken by someone else, or no longer ours in the CRM: say so. The answer to a refused send
        // ("already taken by …, your reply was not sent") says more, so it stays if it is shown.
        closeChat($('conv-alert').textContent || r.data.message || t.gone);
      } else {
        throw r;
      }
    });
  }

  function loadOlderMessages() {
    if (!state.openId || !state.olderCursor) return;
    var id = state.openId;
    var scroller = $('conv-scroll');
    var before = scroller.scrollHeight;
    api('GET', urls.messages.replace('__ID__', id) + '?before=' + state.olderCursor).then(function (r) {
      if (!r.ok || state.openId !== id) return;
      state.messages = r.data.messages.concat(state.messages);
      state.olderCursor = r.data.older_cursor;
      renderMessages(false);
      scroller.scrollTop = scroller.scrollHeight - before;
    });
  }

  /* --- writing -------------------------------------------------------------------------------------- */

  function send(event) {
    event.preventDefault();
    if (state.busy || !state.chat) return;
    var box = $('composer-text');
    var text = box.value.trim();
    if (!text) {
      alertBox(t.empty_text);
      return;
    }
    if (text.length > data.max_text) {
      alertBox(fmt(t.too_long, { max: data.max_text }));
      return;
    }
    var id = state.chat.id;
    state.busy = true;
    $('send').disabled = true;
    alertBox('');
    api('POST', urls.messages.replace('__ID__', id), {
      text: text,
      idempotency_key: state.key,
      expect_offer: !!state.chat.offered
    })
      .then(function (r) {
        if (r.ok) {
          box.value = '';
          state.key = W.newKey();
          state.chatTag = '';
          state.listTag = '';
          return Promise.all([refreshChat(), loadList()]);
        }
        // 409: somebody was faster with this new client (403/404: the chat is no longer ours to
        // answer). The reply was not stored: it moves to the "unsent reply" block, which the list
        // refresh and the chat closing that follow leave alone.
        if (r.status === 409 || r.status === 403 || r.status === 404) {
          keepUnsent(text, (state.chat && (state.chat.title || state.chat.phone)) || t.client);
          box.value = '';
        }
        alertBox(r.data.message || t.offline);
        state.listTag = '';
        return loadList();
      })
      .catch(function () {
        alertBox(t.offline);
      })
      .then(function () {
        state.busy = false;
        $('send').disabled = false;
      });
  }

  function noReply() {
    if (!state.chat) return;
    var id = state.chat.id;
    api('POST', urls.no_reply.replace('__ID__', id), {}).then(function (r) {
      if (!r.ok) {
        alertBox(r.data.message || t.offline);
        return;
      }
      state.chatTag = '';
      state.listTag = '';
      refreshChat();
      loadList();
    });
  }

  /* --- polling ----------------------------------------------------------------------------------------- */

  function status(text) {
    $('chats-status').textContent = text || '';
  }

  function schedule() {
    clearTimeout(state.timer);
    if (state.stopped) return;
    var wait = document.hidden ? data.poll_ms * 5 : data.poll_ms;
    state.timer = setTimeout(poll, Math.min(wait * Math.pow(2, state.failures), 30000));
  }

  function poll() {
    Promise.all([loadList(), refreshChat()])
      .then(function () {
        state.failures = 0;
        status('');
      })
      .catch(function (r) {
        if (r && r.status === 401) {
          state.stopped = true;
          status(t.expired);
          return;
        }
        state.failures = Math.min(state.failures + 1, 4);
        status(t.offline);
      })
      .then(schedule);
  }

  document.addEventListener('DOMContentLoaded', function () {
    data = JSON.parse($('chats-data').textContent);
    t = data.i18n;
    urls = data.urls;
    state.key = W.newKey();
    var initial = data.initial;
    applyList(initial.list, false);
    state.listTag = initial.list_etag || '';
    if (initial.chat) {
      state.openId = initial.chat.chat.id;
      state.chatTag = initial.chat_etag || '';
      applyChat(initial.chat, true);
    } else if (initial.error) {
      closeChat(initial.error);
    }
    $('composer').addEventListener('submit', send);
    $('composer-text').addEventListener('keydown', function (event) {
      // Enter sends, Shift+Enter starts a new line (as in every messenger).
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) send(event);
    });
    $('no-reply').addEventListener('click', noReply);
    $('unsent-copy').addEventListener('click', copyUnsent);
    $('unsent-dismiss').addEventListener('click', function () {
      state.unsent = null;
      renderUnsent();
    });
    $('older').addEventListener('click', loadOlderMessages);
    $('more-chats').addEventListener('click', loadOlderChats);
    $('conv-back').addEventListener('click', function () {
      closeChat('');
      renderList();
    });
    document.querySelectorAll('[data-filter]').forEach(function (button) {
      button.addEventListener('click', function () {
        state.filter = button.getAttribute('data-filter');
        document.querySelectorAll('[data-filter]').forEach(function (b) {
          b.setAttribute('aria-pressed', String(b === button));
        });
        state.listTag = '';
        state.chats = [];
        loadList();
      });
    });
    document.addEventListener('visibilitychange', function () {
      if (!document.hidden) poll();
    });
    // A CRM card's "New conversation" (static/chat_start.js) hands over the chat it started or
    // found; text the employee typed but that was not sent stays in the composer.
    document.addEventListener('chats:open', function (event) {
      var detail = event.detail || {};
      state.listTag = '';
      loadList();
      openChat(detail.id);
      if (detail.text) $('composer-text').value = detail.text;
      if (detail.notice) alertBox(detail.notice);
    });
    schedule();
  });
})();

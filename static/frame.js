/* The height of our page's frame inside Bitrix24, and what stays in sight in a tall one.

   Bitrix24 shows an app in an iframe of its own height (about 390 px at first) and changes it only
   when the app asks, through the BX24 library (BX24.fitWindow / BX24.resizeWindow; reference
   bitrix24.md §2.3). This script asks after load and whenever the page's height changes (a dialog
   opens, "Refresh CRM data" answers, problems appear, the chat list grows), so the frame never
   cuts the page off and shows no scrollbar of its own.

   - A document page (settings, app page, installer, errors) gets the height of its content.
   - A page laid out on the viewport that does not scroll itself (the chat panel: body overflow
     hidden) gets the height its scrolling parts need, at least MIN_APP and at most about one
     screen, so its composer stays in sight; past that its lists scroll inside.

   A frame as tall as its page no longer scrolls: the parent page does. So "sticky" and "fixed"
   mean nothing any more, and two things need the part of the frame the user actually sees, which
   an IntersectionObserver reports even across origins (markers every STEP px down the page):
   - a sticky bar at the top of the page (the settings' Save bar and its status line) is moved to
     the top of that part, so the answer to Save is where the admin looks;
   - a modal dialog is placed in that part, the frame grows when the dialog needs more room, and the
     dialog is never taller than what shows: it scrolls inside.

   The official library's fitWindow sends the document's scrollHeight, which never goes below the
   frame's current height, and its resizeWindow wants a width in pixels. So the wanted height is
   also set as the root's min-height (fitWindow then sends exactly it, with width 100%), and to
   shrink, resizeWindow goes first and fitWindow restores the full width. */
(function () {
  'use strict';

  var BX = window.BX24;
  if (!BX || typeof BX.init !== 'function') return;

  var MIN_APP = 600; // Bitrix24's own minimum for app frames in CRM cards (core applayout.css)
  var MAX_DIALOG = 760;
  var MIN_DIALOG = 320;
  var GAP = 12;
  var STEP = 16; // marker height: the top of the visible part is known to a few pixels

  var ready = false;
  var sent = 0;
  var timer = null;
  var placed = null; // the modal dialog we positioned: {dialog, top, height, want}
  var ours = new WeakSet(); // elements whose style we set (their changes are not page changes)

  function clamp(value, low, high) {
    return Math.max(low, Math.min(high, value));
  }

  function appLike() {
    return window.getComputedStyle(document.body).overflowY === 'hidden';
  }

  function openModal() {
    var found = null;
    document.querySelectorAll('dialog[open]').forEach(function (d) {
      if (d.matches(':modal')) found = d;
    });
    return found;
  }

  // How much taller the element's scrolling parts would like to be (0 when nothing overflows).
  function overflowOf(root) {
    var extra = 0;
    var all = [root].concat(Array.prototype.slice.call(root.querySelectorAll('*')));
    all.forEach(function (el) {
      if (el.tagName === 'DIALOG' && el !== root) return;
      var style = window.getComputedStyle(el);
      if (style.overflowY !== 'auto' && style.overflowY !== 'scroll') return;
      extra = Math.max(extra, el.scrollHeight - el.clientHeight);
    });
    return extra;
  }

  function maxApp() {
    var screenRoom = (window.screen && window.screen.availHeight) || 900;
    return Math.max(MIN_APP, Math.min(1200, screenRoom - 160));
  }

  // The page's own height, from layout boxes (offsetTop/offsetHeight ignore the transform that
  // keeps the top bar in sight, and our markers are out of the flow).
  function documentHeight() {
    var body = document.body;
    var height = body.offsetHeight;
    Array.prototype.forEach.call(body.children, function (el) {
      var style = window.getComputedStyle(el);
      if (style.position === 'absolute' || style.position === 'fixed' || style.display === 'none') return;
      height = Math.max(height, el.offsetTop + el.offsetHeight + (parseFloat(style.marginBottom) || 0));
    });
    document.querySelectorAll('dialog[open]').forEach(function (d) {
      if (!d.matches(':modal')) height = Math.max(height, d.offsetTop + d.offsetHeight);
    });
    return Math.ceil(height);
  }

  function contentHeight() {
    if (appLike()) {
      var body = document.body;
      return clamp(Math.ceil(Math.max(body.scrollHeight, body.offsetHeight)) + overflowOf(body), MIN_APP, maxApp());
    }
    return documentHeight();
  }

  // What the dialog would take without limits: its box plus what its scrolling parts hide.
  function naturalHeight(dialog) {
    return Math.ceil(dialog.getBoundingClientRect().height + overflowOf(dialog));
  }

  /* --- the part of the frame the user sees ----------------------------------------------------- */

  var seen = { top: 0, bottom: 0, known: false };
  var probe = null;
  var probeObserver = null;
  var markerTops = new Map(); // marker -> {top, bottom} of its visible part, while visible

  function recountSeen() {
    var top = Infinity;
    var bottom = -Infinity;
    markerTops.forEach(function (part) {
      top = Math.min(top, part.top);
      bottom = Math.max(bottom, part.bottom);
    });
    seen = top === Infinity ? { top: 0, bottom: 0, known: true, none: true } : { top: top, bottom: bottom, known: true };
    follow();
    if (placed) fitDialogToSeen();
  }

  function buildProbe(height) {
    if (!('IntersectionObserver' in window)) return;
    if (!probe) {
      probe = document.createElement('div');
      probe.setAttribute('aria-hidden', 'true');
      probe.setAttribute('data-frame-probe', '');
      probe.style.cssText = 'position:absolute;left:0;top:0;width:1px;overflow:hidden;opacity:0;pointer-events:none;';
      document.body.appendChild(probe);
      var thresholds = [0, 0.25, 0.5, 0.75, 1];
      probeObserver = new IntersectionObserver(function (entries) {
        entries.forEach(function (entry) {
          if (entry.isIntersecting) {
            markerTops.set(entry.target, { top: entry.intersectionRect.top, bottom: entry.intersectionRect.bottom });
          } else {
            markerTops.delete(entry.target);
          }
        });
        recountSeen();
      }, { threshold: thresholds });
    }
    // As tall as the frame and clipped: the markers must not make the document any taller.
    probe.style.height = height + 'px';
    var count = Math.ceil(height / STEP);
    while (probe.children.length < count) {
      var marker = document.createElement('div');
      marker.style.cssText = 'position:absolute;left:0;width:1px;height:' + STEP + 'px;top:' + probe.children.length * STEP + 'px;';
      probe.appendChild(marker);
      probeObserver.observe(marker);
    }
    while (probe.children.length > count) {
      var last = probe.lastElementChild;
      probeObserver.unobserve(last);
      markerTops.delete(last);
      probe.removeChild(last);
    }
  }

  // The page's sticky top bar (position: sticky, at the top of the body): moved down to the top of
  // what shows, never past the end of the page.
  function follow() {
    if (appLike()) return;
    var end = documentHeight();
    Array.prototype.forEach.call(document.body.children, function (el) {
      if (window.getComputedStyle(el).position !== 'sticky') return;
      ours.add(el);
      var room = Math.max(0, end - el.offsetTop - el.offsetHeight);
      var shift = seen.known && !seen.none ? clamp(seen.top - el.offsetTop, 0, room) : 0;
      el.style.transform = shift ? 'translateY(' + Math.round(shift) + 'px)' : '';
    });
  }

  /* --- asking Bitrix24 for a height -------------------------------------------------------------- */

  function send(height) {
    height = Math.ceil(height);
    if (!ready || height <= 0 || height === sent) return;
    sent = height;
    document.documentElement.style.minHeight = height + 'px';
    buildProbe(height);
    if (height >= window.innerHeight) {
      BX.fitWindow();
    } else {
      var width = document.documentElement.clientWidth || window.innerWidth;
      BX.resizeWindow(width, height, function () {
        BX.fitWindow();
      });
    }
  }

  function wanted() {
    var height = contentHeight();
    if (placed && placed.dialog.open) height = Math.max(height, placed.top + placed.want + GAP);
    return height;
  }

  function refit() {
    clearTimeout(timer);
    timer = setTimeout(function () {
      var dialog = openModal();
      if (placed && placed.dialog !== dialog) release();
      if (dialog && !placed) place(dialog);
      send(wanted());
      follow();
    }, 40);
  }

  /* --- modal dialogs ------------------------------------------------------------------------------- */

  function apply() {
    var style = placed.dialog.style;
    ours.add(placed.dialog);
    style.marginTop = placed.top + 'px';
    style.marginBottom = 'auto';
    style.maxHeight = placed.height + 'px';
  }

  // Once the frame has grown, the parent's viewport may cut it: fit the dialog to what shows.
  function fitDialogToSeen() {
    if (!seen.known || seen.none) return;
    var fits = Math.floor(seen.bottom - placed.top - GAP);
    var height = clamp(fits, Math.min(placed.want, MIN_DIALOG), placed.want);
    if (height !== placed.height) {
      placed.height = height;
      apply();
    }
  }

  // A modal dialog opened: put it at the top of what the user sees, and grow the frame for it.
  function place(dialog) {
    var want = Math.min(naturalHeight(dialog), MAX_DIALOG);
    var top = (seen.known && !seen.none ? seen.top : 0) + GAP;
    placed = { dialog: dialog, top: Math.round(top), height: want, want: want };
    apply();
    fitDialogToSeen();
  }

  function release() {
    var style = placed.dialog.style;
    style.marginTop = '';
    style.marginBottom = '';
    style.maxHeight = '';
    placed = null;
  }

  /* --- watching the page ----------------------------------------------------------------------------- */

  function pageChanged(records) {
    return records.some(function (r) {
      if (probe && (r.target === probe || probe.contains(r.target))) return false;
      return !(r.type === 'attributes' && r.attributeName === 'style' && ours.has(r.target));
    });
  }

  // Placed as it opens, before the opener moves focus into it: focusing a field of a dialog left at
  // the frame's centre (far below, in a tall frame) would scroll the portal's page away.
  if (window.HTMLDialogElement && HTMLDialogElement.prototype.showModal) {
    var nativeShowModal = HTMLDialogElement.prototype.showModal;
    HTMLDialogElement.prototype.showModal = function () {
      if (placed && placed.dialog !== this) release();
      if (!placed && seen.known && !seen.none) {
        // Where it will be, before it opens: opening focuses its first field.
        this.style.marginTop = Math.round(seen.top + GAP) + 'px';
        this.style.marginBottom = 'auto';
        this.style.maxHeight = Math.max(MIN_DIALOG, Math.floor(seen.bottom - seen.top - 2 * GAP)) + 'px';
      }
      nativeShowModal.apply(this, arguments);
      if (!placed) place(this);
      refit();
    };
  }

  window.WidgetFrame = { refit: refit };

  BX.init(function () {
    ready = true;
    refit();
    if (window.ResizeObserver) new ResizeObserver(refit).observe(document.body);
    new MutationObserver(function (records) {
      if (pageChanged(records)) refit();
    }).observe(document.body, {
      childList: true,
      subtree: true,
      characterData: true,
      attributes: true,
      attributeFilter: ['open', 'hidden', 'class', 'style']
    });
    window.addEventListener('resize', refit);
    window.addEventListener('load', refit);
  });
})();

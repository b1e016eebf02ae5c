/*
 * Our pages inside Bitrix24 (app page, CRM card tab): size the frame to the content, so the
 * portal shows no inner scrollbar (a Market moderation rule, reference bitrix24.md §8.2).
 */
(function () {
  'use strict';
  if (!window.BX24) { return; }
  BX24.init(function () {
    BX24.fitWindow();
    var pending = null;
    window.addEventListener('resize', function () {
      if (pending) { clearTimeout(pending); }
      pending = setTimeout(function () { BX24.fitWindow(); }, 150);
    });
  });
}());

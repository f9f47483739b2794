"""Page CSS and the one small script: kept as Python strings so that they ship with the package."""

CSS = r"""
.gradio-container { max-width: 1440px !important; margin: 0 auto !important; }
.topbar { display: flex; flex-wrap: wrap; align-items: center; gap: 4px 24px; padding: 2px 4px; }
.brand { font-size: 1.25rem; font-weight: 700; white-space: nowrap; }
.status { flex: 1 1 300px; display: flex; flex-wrap: wrap; gap: 2px 14px; font-size: .85rem; line-height: 1.45;
  justify-content: flex-end; }
.status .st-item { white-space: normal; }
.status .st-dim { color: var(--body-text-color-subdued); }
.status .st-warn { color: #b45309; }
.dark .status .st-warn { color: #fbbf24; }
.status .st-busy { color: var(--color-accent); }
.status .st-note { color: #15803d; }
.dark .status .st-note { color: #4ade80; }

#chat { flex-grow: 1; }
#chat .message-wrap .prose blockquote { margin: .3em 0 .6em; padding-left: .7em; border-left: 3px solid var(--border-color-primary);
  color: var(--body-text-color); opacity: .9; }
#chat .message-wrap a[href^="#src-"] { text-decoration: none; font-weight: 600; color: var(--color-accent); }
#ask-row { align-items: stretch; gap: 8px; }
#ask-row button { align-self: stretch; }
#question textarea { min-height: 44px; }
#chat-actions { gap: 8px; }

.src-list { display: flex; flex-direction: column; gap: 8px; }
.src-intro, .src-query, .src-empty { font-size: .85rem; color: var(--body-text-color-subdued); }
.src-empty { padding: 12px 4px; }
details.src { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 6px 10px;
  background: var(--background-fill-secondary); transition: box-shadow .3s; }
details.src.cited { border-color: var(--color-accent-soft); }
details.src.flash { box-shadow: 0 0 0 3px var(--color-accent); }
details.src > summary { cursor: pointer; display: flex; flex-wrap: wrap; gap: 2px 8px; align-items: baseline;
  list-style: none; font-size: .9rem; }
details.src > summary::-webkit-details-marker { display: none; }
details.src > summary::before { content: "▸"; color: var(--body-text-color-subdued); }
details.src[open] > summary::before { content: "▾"; }
.src-n { font-weight: 700; color: var(--color-accent); }
.src-file { font-weight: 600; overflow-wrap: anywhere; }
.src-head { color: var(--body-text-color-subdued); overflow-wrap: anywhere; }
.src-head::before { content: "› "; }
.src-lines { font-size: .8em; color: var(--body-text-color-subdued); white-space: nowrap; }
.src-cited { font-size: .72em; padding: 0 5px; border-radius: 4px; background: var(--color-accent-soft);
  color: var(--color-accent); font-weight: 600; }
.src-ctx { margin-top: 6px; border-radius: 6px; background: var(--background-fill-primary); padding: 4px 0;
  font-family: var(--font-mono); font-size: .78rem; line-height: 1.5; max-height: 420px; overflow: auto; }
.src-ctx .ln { display: flex; white-space: pre-wrap; overflow-wrap: anywhere; padding-right: 6px;
  border-left: 3px solid transparent; }
.src-ctx .ln .no { flex: 0 0 3.4em; text-align: right; padding-right: .7em; color: var(--body-text-color-subdued);
  user-select: none; }
.src-ctx .ln .tx { flex: 1 1 auto; min-width: 0; }
.src-ctx .ln:not(.in) { opacity: .6; }
.src-ctx .ln.in { background: rgba(245, 158, 11, .10); border-left-color: #f59e0b; }
.src-terms { margin-top: 4px; font-size: .78rem; color: var(--body-text-color-subdued); }
.src-warn { margin-top: 6px; font-size: .8rem; color: #b45309; }
#sources mark, .src-terms mark { background: #fde047; color: #111; padding: 0 1px; border-radius: 2px; }

#ask-msg:not(:has(.msg)) { display: none; }  /* no empty row between the question and the buttons */
details.src-turn { border-top: 1px dashed var(--border-color-primary); padding-top: 6px; margin-top: 4px; }
details.src-turn > summary { cursor: pointer; font-size: .85rem; color: var(--body-text-color-subdued);
  overflow-wrap: anywhere; }
details.src-turn > .src-list { margin-top: 6px; }
.src-turns { display: flex; flex-direction: column; gap: 8px; }
#chat details.answer-passages { margin-top: .4em; border: 1px solid var(--border-color-primary); border-radius: 6px;
  padding: 4px 8px; font-size: .9em; }
#chat details.answer-passages > summary { cursor: pointer; color: var(--body-text-color-subdued); }
#chat details.answer-passages .ap-item { margin: .4em 0; }
#chat details.answer-passages .ap-label { font-weight: 600; }
#chat details.answer-passages blockquote { margin: .2em 0 .2em .2em; padding-left: .6em;
  border-left: 3px solid var(--border-color-primary); }
.answer-scope { font-size: .8rem; color: var(--body-text-color-subdued); overflow-wrap: anywhere; }
#chat .answer-scope { margin-top: .2em; border-top: 1px dashed var(--border-color-primary); padding-top: .3em; }
#scope-active:not(:has(.answer-scope, .msg)) { display: none; }  /* no empty row above the chat without a scope */
#scope-active .answer-scope { font-size: .85rem; color: var(--color-accent); padding: 0 4px; }
#scope-row { align-items: flex-end; gap: 8px; }
#scope-clear { align-self: flex-end; margin-bottom: 6px; }
#scope-in li.item { white-space: pre; }  /* the folder tree's indentation */
#delete-row { align-items: flex-end; }
#delete { align-self: flex-end; margin-bottom: 6px; }
.msg { font-size: .88rem; padding: 6px 10px; border-radius: 6px; overflow-wrap: anywhere; }
.msg.ok { background: rgba(34, 197, 94, .12); }
.msg.err { background: rgba(239, 68, 68, .14); color: #991b1b; }
.dark .msg.err { color: #fecaca; }
.reindex { font-size: .85rem; padding: 4px 2px; overflow-wrap: anywhere; }
.reindex.busy { color: var(--color-accent); }
.reindex.err { color: #b91c1c; }
.reindex progress { width: 100%; height: 8px; }
.notes-count { font-size: .8rem; color: var(--body-text-color-subdued); margin: 4px 0; }
table.notes { width: 100%; font-size: .8rem; border-collapse: collapse; }
#notes-list table, #notes-list tbody, #notes-list tr, #notes-list td { border: 0 !important; background: transparent; }
#notes-list table.notes td { padding: 3px 4px; border-bottom: 1px solid var(--border-color-primary) !important;
  vertical-align: top; }
table.notes td.nm { overflow-wrap: anywhere; }
table.notes td.sz, table.notes td.md { white-space: nowrap; color: var(--body-text-color-subdued); }
table.notes td.ix { white-space: nowrap; }
table.notes .st-ok { color: #15803d; }
table.notes .st-pending { color: #b45309; }
table.notes .st-skipped { color: var(--body-text-color-subdued); }
table.notes .st-failed { color: #b91c1c; font-weight: 600; }
table.notes .pc { color: var(--body-text-color-subdued); }
table.notes .why { font-size: .75rem; color: var(--body-text-color-subdued); }
table.notes tr.failed .why { color: #b91c1c; }
table.notes tr.dir td { font-weight: 600; color: var(--body-text-color-subdued); }
#reindex-row { align-items: center; gap: 8px; }

@media (max-width: 640px) {
  .gradio-container { padding: 6px !important; }
  .brand { font-size: 1.05rem; }
  .status { font-size: .78rem; justify-content: flex-start; }
  table.notes td.md { display: none; }
}
"""

# Clicking a citation [n] in an answer opens source n in the panel (switching to its tab).
HEAD = r"""
<script>
(function () {
  function openSource(id) {
    var el = document.getElementById(id);
    if (!el) return false;
    // An earlier turn's sources sit in a closed block of their own: open the way to the passage.
    for (var up = el.parentElement; up; up = up.parentElement) {
      if (up.tagName === "DETAILS") up.open = true;
    }
    el.open = true;
    el.scrollIntoView({ behavior: "smooth", block: "nearest" });
    el.classList.add("flash");
    setTimeout(function () { el.classList.remove("flash"); }, 1400);
    return true;
  }
  document.addEventListener("click", function (ev) {
    var a = ev.target && ev.target.closest ? ev.target.closest('a[href*="#src-"]') : null;
    if (!a) return;
    var id = a.getAttribute("href").split("#").pop();
    if (!/^src-\d+-\d+$/.test(id)) return;
    ev.preventDefault();
    ev.stopPropagation();
    // The Sources tab's button, found by its id whatever language its label is in. Another tab
    // may be showing while the panel stays in the page (hidden): switch first, then open.
    var tab = document.getElementById("tab-sources-button");
    if (tab && tab.getAttribute("aria-selected") !== "true") {
      tab.click();
      setTimeout(function () { openSource(id); }, 200);
      return;
    }
    openSource(id);
  }, true);
})();
</script>
"""

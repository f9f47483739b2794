"""The page's words in the reader's language: English, or Chinese when the browser asks for it.

Two routes, one catalogue:

- component labels, placeholders and button texts are static: they go to Gradio as
  ``I18N(key)`` and the browser picks the language (``navigator.language``; any ``zh-*``
  gets ``zh``);
- HTML the server renders (status line, sources panel, notes list, messages) is written
  per request in the language of its ``Accept-Language`` header (`lang_of`).

Every key exists in both languages (checked at import). Messages made by the library
(``rag.*``: upload refusals, re-indexing notices, the question-length limit) are shown
as the library wrote them.
"""
from __future__ import annotations

from typing import Literal

import gradio as gr

__all__ = ["LANGS", "Lang", "lang_of", "make_i18n", "t"]

Lang = Literal["en", "zh"]
LANGS: tuple[Lang, ...] = ("en", "zh")

TEXTS: dict[Lang, dict[str, str]] = {
    "en": {
        # --- labels (also sent to the browser through I18N) ---
        "title": "Notes chat",
        "chat_placeholder": "**Ask anything your notes cover** — in English or 中文.<br>"
                            "Answers cite passages like [1]; click one to see it in the note.",
        "question_placeholder": "Ask about your notes…  例如：LoRA 的原理是什么？",
        "send": "Send",
        "stop": "Stop",
        "new_chat": "New chat",
        "retry": "Retry",
        "tab_sources": "Sources",
        "tab_notes": "Notes",
        "upload_label": "Add notes: drop {types} files (up to {size} each)",
        "replace": "Replace notes that have the same name",
        "note": "Note",
        "delete": "Delete note",
        "rebuild": "Rebuild index",
        # --- the scope picker ---
        "scope_title": "Ask only in some notes: folders, tags, dates",
        "scope_folders": "Folders and notes",
        "scope_tags": "Tags",
        "scope_since": "Since",
        "scope_until": "Until",
        "scope_date_hint": "YYYY-MM-DD",
        "scope_clear": "Clear scope",
        "scope_active": "Answers come only from notes {scope}.",
        "scope_line": "Scope: {scope}",
        "scope_in": "in {folders}",
        "scope_tagged": "tagged {tags}",
        "scope_since_part": "since {date}",
        "scope_until_part": "until {date}",
        "scope_sep": "; ",
        "scope_empty": "No note matches this scope ({scope}): check the folder, tag or dates.",
        "scope_bad_date": "“{value}” is not a date: write it as YYYY-MM-DD (for example 2024-03-01).",
        # --- chat ---
        "thinking": "*Searching your notes…*",
        "stopped": "*(stopped)*",
        "busy": "An answer is still being written: wait for it, or press Stop.",
        "nothing_to_retry": "Nothing to retry yet.",
        "no_index": "There is no index of your notes yet: add notes in the Notes tab and press “Rebuild index”.",
        "must_rebuild": "The index must be rebuilt: {detail}",
        "cannot_search": "The notes cannot be searched.",
        "went_wrong": "Something went wrong: {detail}",
        # --- sources ---
        "src_placeholder": "Ask a question: the passages of your notes behind the answer appear here.",
        "src_searching": "Searching your notes…",
        "src_latest": "Sources of the latest answer — click one to see the passage in its note.",
        "src_not_covered": "Your notes don't seem to cover this; the closest passages are below.",
        "src_this_answer": "Sources of this answer — click one to see the passage in its note.",
        "src_earlier": "Earlier question: {question}",
        "src_none": "No passages found in your notes.",
        "src_lines": "lines {start}–{end}",
        "src_cited": "cited",
        "src_matched": "matched:",
        "src_searched": "searched for: {query}",
        "src_with_history": "(with the earlier conversation)",
        "answer_sources": "Sources",
        "answer_passages": "Supporting passages ({n})",
        # --- status line ---
        "st_index": "<b>{files}</b> notes · <b>{chunks}</b> passages · updated {when}",
        "st_embedder": "embedder: {embedder}",
        "st_no_index": "No index yet",
        "st_llm_down": "answers: <b>{model}</b> is not reachable now ({detail}): answers are <b>quoted from your "
                       "notes</b> until it is back",
        "st_llm": "answers: <b>{model}</b>",
        "st_no_llm": "answers <b>quoted from your notes</b> (no language model); for generated answers set "
                     "RAG_LLM_BASE_URL (vLLM) or RAG_GGUF_PATH",
        "st_reindexing": "re-indexing ({reason})… {progress}",
        "never": "never",
        # --- notes tab ---
        "notes_empty": "No notes yet: add {types} files above.",
        "notes_count_1": "1 note in the notes folder",
        "notes_count": "{n} notes in the notes folder",
        "notes_more": "… and {n} more",
        "notes_search": "Find notes by path…",
        "notes_summary": "{count}: {states}",
        "notes_match": "{n} shown: paths containing “{query}”",
        "state_indexed": "indexed",
        "state_pending": "pending",
        "state_skipped": "skipped",
        "state_failed": "failed",
        "count_indexed": "{n} indexed",
        "count_pending": "{n} pending",
        "count_skipped": "{n} skipped",
        "count_failed": "{n} failed",
        "passages_1": "1 passage",
        "passages_n": "{n} passages",
        "indexed_at": "indexed {when}",
        "cancel_reindex": "Cancel re-indexing",
        "cancelling": "Cancelling the re-indexing: answers keep using the previous index.",
        "nothing_to_cancel": "No re-indexing is running.",
        "reindex_busy": "Re-indexing ({reason}): {progress}",
        "reindex_queued": " (another run queued)",
        "reindex_previous": "Answers use the previous index until the new one is ready.",
        "upload_refused": "Upload refused",
        "nothing_added": "Nothing was added.",
        "reindexing_bg": "Re-indexing in the background…",
        "deleted": "Deleted “{name}”. Re-indexing in the background…",
        "no_delete": "No note was deleted (choose one, then confirm).",
        "rebuilding": "Rebuilding the index in the background…",
        "rebuild_queued": "A rebuild is running; another will follow it.",
        # --- errors raised by the library (RagError.key) ---
        "q_empty": "Please type a question.",
        "q_too_long": "The question is too long ({n} characters; the limit is {limit}). Please shorten it.",
        "up_too_big": "“{name}” is {size}; notes can be at most {limit}.",
        "up_empty": "“{name}” is empty.",
        "up_type": "“{name}”: only {allowed} files can be added as notes.",
        "up_exists": "A different note named “{name}” already exists; delete it first or choose to replace it.",
    },
    "zh": {
        "title": "笔记问答",
        "chat_placeholder": "**向你的笔记提问** —— 中文或英文均可。<br>回答会引用段落，如 [1]；点击即可在笔记中查看该段落。",
        "question_placeholder": "向笔记提问…  例如：LoRA 的原理是什么？",
        "send": "发送",
        "stop": "停止",
        "new_chat": "新对话",
        "retry": "重试",
        "tab_sources": "来源",
        "tab_notes": "笔记",
        "upload_label": "添加笔记：拖入 {types} 文件（每个不超过 {size}）",
        "replace": "替换同名笔记",
        "note": "笔记",
        "delete": "删除笔记",
        "rebuild": "重建索引",
        "scope_title": "只在部分笔记中提问：文件夹、标签、日期",
        "scope_folders": "文件夹和笔记",
        "scope_tags": "标签",
        "scope_since": "起始日期",
        "scope_until": "截止日期",
        "scope_date_hint": "YYYY-MM-DD",
        "scope_clear": "清除范围",
        "scope_active": "只从这些笔记中回答：{scope}",
        "scope_line": "范围：{scope}",
        "scope_in": "位于 {folders}",
        "scope_tagged": "标签为 {tags}",
        "scope_since_part": "{date} 起",
        "scope_until_part": "{date} 止",
        "scope_sep": "；",
        "scope_empty": "没有笔记符合这个范围（{scope}）：请检查文件夹、标签或日期。",
        "scope_bad_date": "“{value}”不是日期：请写成 YYYY-MM-DD（例如 2024-03-01）。",
        "thinking": "*正在检索你的笔记…*",
        "stopped": "*（已停止）*",
        "busy": "上一个回答还在生成：请稍候，或按“停止”。",
        "nothing_to_retry": "还没有可以重试的问题。",
        "no_index": "还没有笔记索引：请在“笔记”页添加笔记，然后按“重建索引”。",
        "must_rebuild": "索引需要重建：{detail}",
        "cannot_search": "暂时无法检索笔记。",
        "went_wrong": "出错了：{detail}",
        "src_placeholder": "提问后，回答所依据的笔记段落会显示在这里。",
        "src_searching": "正在检索你的笔记…",
        "src_latest": "最新回答的来源 —— 点击可查看笔记中的段落。",
        "src_not_covered": "你的笔记似乎没有涉及这个问题；下面是最接近的段落。",
        "src_this_answer": "该回答的来源 —— 点击可查看笔记中的段落。",
        "src_earlier": "之前的问题：{question}",
        "src_none": "笔记中没有找到相关段落。",
        "src_lines": "第 {start}–{end} 行",
        "src_cited": "已引用",
        "src_matched": "匹配：",
        "src_searched": "检索内容：{query}",
        "src_with_history": "（结合了之前的对话）",
        "answer_sources": "来源",
        "answer_passages": "依据的段落（{n}）",
        "st_index": "<b>{files}</b> 篇笔记 · <b>{chunks}</b> 个段落 · 更新于 {when}",
        "st_embedder": "嵌入模型：{embedder}",
        "st_no_index": "尚无索引",
        "st_llm_down": "回答：<b>{model}</b> 暂时无法连接（{detail}）：恢复之前回答<b>摘自你的笔记</b>",
        "st_llm": "回答：<b>{model}</b>",
        "st_no_llm": "回答<b>摘自你的笔记</b>（没有语言模型）；如需生成式回答，请设置 RAG_LLM_BASE_URL（vLLM）或 RAG_GGUF_PATH",
        "st_reindexing": "正在重建索引（{reason}）… {progress}",
        "never": "从未",
        "notes_empty": "还没有笔记：请在上方添加 {types} 文件。",
        "notes_count_1": "笔记文件夹中有 1 篇笔记",
        "notes_count": "笔记文件夹中有 {n} 篇笔记",
        "notes_more": "…… 另有 {n} 篇",
        "notes_search": "按路径查找笔记…",
        "notes_summary": "{count}：{states}",
        "notes_match": "显示 {n} 篇：路径包含“{query}”",
        "state_indexed": "已索引",
        "state_pending": "待索引",
        "state_skipped": "已跳过",
        "state_failed": "失败",
        "count_indexed": "{n} 篇已索引",
        "count_pending": "{n} 篇待索引",
        "count_skipped": "{n} 篇已跳过",
        "count_failed": "{n} 篇失败",
        "passages_1": "1 个段落",
        "passages_n": "{n} 个段落",
        "indexed_at": "索引于 {when}",
        "cancel_reindex": "取消重建索引",
        "cancelling": "正在取消重建索引：回答继续使用原来的索引。",
        "nothing_to_cancel": "当前没有在重建索引。",
        "reindex_busy": "正在重建索引（{reason}）：{progress}",
        "reindex_queued": "（之后还有一次）",
        "reindex_previous": "新索引完成之前，回答使用原来的索引。",
        "upload_refused": "上传被拒绝",
        "nothing_added": "没有添加任何文件。",
        "reindexing_bg": "正在后台重建索引…",
        "deleted": "已删除“{name}”。正在后台重建索引…",
        "no_delete": "没有删除笔记（请先选择一篇，再确认）。",
        "rebuilding": "正在后台重建索引…",
        "rebuild_queued": "正在重建索引；完成后会再重建一次。",
        "q_empty": "请输入问题。",
        "q_too_long": "问题太长（{n} 个字符，上限 {limit} 个），请缩短后再问。",
        "up_too_big": "“{name}” 有 {size}，笔记最大 {limit}。",
        "up_empty": "“{name}” 是空文件。",
        "up_type": "“{name}”：只能添加 {allowed} 文件作为笔记。",
        "up_exists": "已有另一篇名为“{name}”的笔记：请先删除它，或选择替换。",
    },
}

_missing = set(TEXTS["en"]) ^ set(TEXTS["zh"])
if _missing:  # pragma: no cover - a catalogue error shows at import, not on a user's page
    raise RuntimeError(f"ui.i18n: keys missing in one language: {sorted(_missing)}")


def t(lang: str, key: str, **values) -> str:
    """The text ``key`` in ``lang`` (English for any other language), with ``values`` filled in.

    Values are inserted as given: callers building HTML escape them first."""
    text = TEXTS.get(lang, TEXTS["en"]).get(key) or TEXTS["en"][key]  # type: ignore[arg-type]
    return text.format(**values) if values else text


def error_text(lang: str, exc: BaseException) -> str:
    """A library error in the reader's language when the catalogue has its ``key``, else as raised.
    An error made of ``parts`` (several refused files) renders each part, then "nothing added"."""
    key, values = getattr(exc, "key", ""), dict(getattr(exc, "values", {}))
    if "parts" in values:
        text = " ".join(error_text(lang, part) for part in values.pop("parts"))
        return text + (" " + t(lang, "nothing_added") if values.get("nothing_added") else "")
    if key and key in TEXTS["en"]:
        return t(lang, key, **values)
    return str(exc)


def lang_of(request: gr.Request | None) -> Lang:
    """The reader's language from the request's ``Accept-Language``: its first choice decides."""
    headers = getattr(request, "headers", None)
    header = ""
    if headers is not None:
        try:
            header = headers.get("accept-language") or ""
        except Exception:  # noqa: BLE001 - a header-less request reads as English
            header = ""
    first = header.split(",", 1)[0].split(";", 1)[0].strip().lower()
    return "zh" if first.startswith("zh") else "en"


# The keys the browser translates (labels and placeholders of components).
LABEL_KEYS = ("title", "chat_placeholder", "question_placeholder", "send", "stop", "new_chat", "retry",
              "tab_sources", "tab_notes", "upload_label", "replace", "note", "delete", "rebuild", "notes_search",
              "cancel_reindex", "scope_title", "scope_folders", "scope_tags", "scope_since", "scope_until",
              "scope_date_hint", "scope_clear")


def make_i18n(**values) -> gr.I18n:
    """Gradio's translation table for the static labels; ``values`` fill the templated ones.

    The browser's language tag selects the table: "zh-CN", "zh-TW" and "zh" all read Chinese
    (checked in Chromium), anything else English."""
    return gr.I18n(**{lang: {**{k: TEXTS[lang][k].format(**values) if "{" in TEXTS[lang][k] else TEXTS[lang][k]
                                for k in LABEL_KEYS}, **GRADIO_KEYS[lang]} for lang in LANGS})


# Keys of Gradio's own status tracker: with a table of our own, a locale that lacks them showed
# the raw key ("common.complete") once an event finished.
GRADIO_KEYS = {"en": {"common.complete": "Complete", "common.error": "Error"},
               "zh": {"common.complete": "完成", "common.error": "出错"}}

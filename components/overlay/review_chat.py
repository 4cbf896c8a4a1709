"""Expert Review Chat node: ask questions and judge the answers with short commands typed in the Playground."""

import asyncio

from lfx.custom.custom_component.component import Component
from lfx.io import HandleInput, MessageTextInput, Output, StrInput
from lfx.schema.message import Message

from overlay_core.knowledge import language_selectors
from overlay_core.node_base import STATE_FOLDER_INPUT, OverlayNode
from overlay_core.reasoner import Reasoner
from overlay_core.review_chat import ReviewChat
from overlay_core.verification import ReviewStore


class OverlayReviewChat(OverlayNode, Component):
    display_name = "Expert Review Chat"
    description = ("A chat for the expert: a question gets the answer with numbered steps and is queued for review; "
                   "short commands judge it — reject 2 wrong word, approve, correct 3 to WORD, revert, queue, "
                   "show it_…, help. A verdict counts in the next answer.")
    icon = "messages-square"
    name = "OverlayReviewChat"

    inputs = [
        MessageTextInput(name="message", display_name="Message", value="What is a hash table?",
                         info="A question or a review command (connect Chat Input). Type help for the commands."),
        HandleInput(name="knowledge_base", display_name="Knowledge Base", input_types=["KnowledgeBase"], required=True,
                    info="Connect the Knowledge Base node."),
        HandleInput(name="adjacency_table", display_name="Adjacency Table", input_types=["AdjacencyTable"],
                    required=True, info="Connect the Adjacency Table node."),
        HandleInput(name="llm_selector", display_name="LLM Selector", input_types=["LLMSelector"], required=True,
                    info="Connect the LLM Selector node."),
        HandleInput(name="score_accumulator", display_name="Score Accumulator", input_types=["ScoreAccumulator"],
                    required=True, info="Connect the Score Accumulator node: verdicts are written to its file, so "
                    "the next question sees them."),
        StrInput(name="reviewer", display_name="Reviewer", value="",
                 info="Who gives the verdicts (kept in the audit log). Empty = your LangFlow user name."),
        StrInput(name="session", display_name="Chat Session", value="", advanced=True,
                 info="Which chat the current item belongs to; empty = the Playground's chat session."),
        StrInput(name="db_url", display_name="Database URL", value="", advanced=True,
                 info="SQLAlchemy URL; empty = $OVERLAY_DB_URL, else reviews.sqlite3 in the state folder."),
        StrInput(**STATE_FOLDER_INPUT),
    ]
    outputs = [Output(display_name="Reply", name="reply", method="reply")]

    async def reply(self) -> Message:
        reviewer = (self.reviewer or "").strip() or await self._user_name()
        result = await asyncio.to_thread(self._handle, reviewer)
        self.status = f"{result.action}: {result.verdict_id or result.item_id or ''}".rstrip(": ")
        return Message(text=result.text)

    def _handle(self, reviewer: str):
        acc = self.score_accumulator
        acc_path = getattr(acc.accumulator, "path", None) or self.state.accumulator
        store = ReviewStore(self.db_url or self.state.review_db)
        try:
            return ReviewChat(store, acc_path).handle(self.message, session=self._session(), reviewer=reviewer,
                                                      answer=self._answer)
        finally:
            store.close()

    def _answer(self, question: str) -> dict:
        # built as the Overlay Reasoner node builds it, with every setting and stage at its default
        sel, acc = self.llm_selector, self.score_accumulator
        russian = language_selectors(sel, "auto", n_ctx=sel.n_ctx, n_threads=sel.n_threads, n_batch=sel.n_batch)
        return Reasoner(self.knowledge_base, self.adjacency_table, sel, acc.accumulator, selectors=russian,
                        weights=acc.weights).answer(question)

    def _session(self) -> str:
        if (self.session or "").strip():
            return self.session.strip()
        try:
            return str(self.graph.session_id or "")
        except Exception:  # noqa: BLE001 - a node run without a graph (tests, scripts) has no session
            return ""

    async def _user_name(self) -> str:
        """The LangFlow user's name, or "" when there is no user (lfx run, tests) or no user database."""
        try:
            user_id = self.user_id
            if not user_id:
                return ""
            from sqlalchemy import text

            from lfx.services.deps import session_scope

            async with session_scope() as db:
                # ids are CHAR(32) hex in LangFlow's SQLite and uuid in PostgreSQL: compare both as dashless text
                row = (await db.execute(text('SELECT username FROM "user" '
                                             "WHERE REPLACE(CAST(id AS TEXT), '-', '') = :id"),
                                        {"id": str(user_id).replace("-", "").lower()})).first()
            return str(row[0]) if row else ""
        except Exception:  # noqa: BLE001 - no server database here: the node asks for a Reviewer instead
            return ""

"""Apply Verdict node: records an expert verdict (append-only) and applies it to the accumulator."""

from lfx.custom.custom_component.component import Component
from lfx.io import BoolInput, DropdownInput, IntInput, MessageTextInput, Output, StrInput
from lfx.schema.data import Data
from lfx.schema.message import Message

from overlay_core.knowledge import parse_json_object
from overlay_core.node_base import STATE_FOLDER_INPUT, OverlayNode
from overlay_core.replica import apply_pending, review_store


class OverlayApplyVerdict(OverlayNode, Component):
    display_name = "Apply Verdict"
    description = ("Gives a verdict (approve / reject / correct, on the whole answer or one step) on a review item, "
                   "stores it in the append-only log and applies its weight deltas to the accumulator.")
    icon = "gavel"
    name = "OverlayApplyVerdict"

    inputs = [
        MessageTextInput(name="item_id", display_name="Review Item ID", value="",
                         info="The id printed by Expert Verification, or a JSON object with item_id, reviewer, kind, step, word, "
                              "comment (so an API call can set every field)."),
        StrInput(name="reviewer", display_name="Reviewer", value="", info="Who gives the verdict (required)."),
        DropdownInput(name="kind", display_name="Verdict", options=["approve", "reject", "correct"], value="reject",
                      info="approve reinforces, reject penalizes, correct replaces the chosen word."),
        IntInput(name="step", display_name="Step", value=-1,
                 info="The trace step (0, 1, 2 …) whose chosen word the verdict is about; -1 = the whole answer."),
        StrInput(name="word", display_name="Correct Word", value="",
                 info="For 'correct': the word that should have been chosen (one of the step's candidates)."),
        BoolInput(name="new_edge", display_name="Add As New Edge", value=False, advanced=True,
                  info="Allow a correction word that was not a candidate: it becomes an expert-added edge."),
        StrInput(name="comment", display_name="Comment", value="", info="Why (kept in the audit log)."),
        StrInput(name="db_url", display_name="Database URL", value="", advanced=True,
                 info="SQLAlchemy URL; empty = $OVERLAY_DB_URL, else reviews.sqlite3 in the state folder."),
        StrInput(**STATE_FOLDER_INPUT),
    ]
    outputs = [
        Output(display_name="Applied", name="applied", method="apply", group_outputs=True),
        Output(display_name="Summary", name="summary", method="summary", group_outputs=True),
    ]

    def _request(self) -> dict:
        """The verdict fields: the node's inputs, overridden by a JSON object typed in Review Item ID."""
        req = {"item_id": str(self.item_id or "").strip(), "reviewer": self.reviewer, "kind": self.kind,
               "step": self.step, "word": self.word, "new_edge": self.new_edge, "comment": self.comment}
        if req["item_id"].startswith(("{", "[")):
            req.update(parse_json_object(req["item_id"], what="the Review Item ID input"))
        return req

    def _apply(self) -> dict:
        if getattr(self, "_done", None) is None:
            paths = self.state
            db = self.db_url or paths.review_db
            store = review_store(db)
            r = self._request()
            step = r.get("step")
            verdict_id = store.verdict(str(r["item_id"]), reviewer=r["reviewer"], kind=r["kind"],
                                       step=step if isinstance(step, int) and step >= 0 else None,
                                       word=r.get("word") or None, new_edge=bool(r.get("new_edge")),
                                       comment=r.get("comment") or "")
            deltas = apply_pending(store, db, paths.accumulator, verdict_id)
            self._done = {"verdict_id": verdict_id, "deltas": deltas}
            self.status = f"verdict {verdict_id}: {len(deltas)} weight changes"
        return self._done

    def apply(self) -> Data:
        return Data(data=self._apply())

    def summary(self) -> Message:
        d = self._apply()
        lines = [f"Verdict {d['verdict_id']} recorded; weight changes:"]
        lines += [f"- {x.get('prev')} -> {x.get('word')}: {x.get('delta'):+g}" for x in d["deltas"]] or ["- none"]
        return Message(text="\n".join(lines))

"""Expert Verification node: puts an answer and its trace in the review queue."""

from lfx.custom.custom_component.component import Component
from lfx.io import DataInput, Output, StrInput
from lfx.schema.data import Data
from lfx.schema.message import Message

from overlay_core.node_base import STATE_FOLDER_INPUT, OverlayNode
from overlay_core.verification import ReviewStore


class OverlayExpertVerification(OverlayNode, Component):
    display_name = "Expert Verification"
    description = "Enqueues an answer with its full trace for an expert to approve, reject or correct."
    icon = "user-check"
    name = "OverlayExpertVerification"

    inputs = [
        DataInput(name="trace", display_name="Trace", required=True, info="The Trace output of the Overlay Reasoner."),
        StrInput(name="source_flow", display_name="Flow Name", value="overlay-answer", advanced=True,
                 info="Recorded with the item, to tell where the answer came from."),
        StrInput(name="db_url", display_name="Database URL", value="", advanced=True,
                 info="SQLAlchemy URL (e.g. postgresql+psycopg://…); empty = $OVERLAY_DB_URL, else reviews.sqlite3 in the state folder."),
        StrInput(**STATE_FOLDER_INPUT),
    ]
    outputs = [
        Output(display_name="Review Item", name="item", method="enqueue", group_outputs=True),
        Output(display_name="Receipt", name="receipt", method="receipt", group_outputs=True),
    ]

    def _enqueue(self) -> dict:
        if getattr(self, "_item", None) is None:
            r = self.trace.data
            store = ReviewStore(self.db_url or self.state.review_db)
            item_id = store.enqueue(flow=self.source_flow, question=r.get("question", ""), answer=r.get("answer", ""),
                                    trace=r, model_fingerprint=r.get("model", ""), index_fingerprint=r.get("index", ""))
            self._item = {"item_id": item_id, "question": r.get("question", ""), "answer": r.get("answer", ""),
                          "steps": len(r.get("trace", []))}
            self._trace = r
            self.status = f"queued for review: {item_id}"
        return self._item

    def enqueue(self) -> Data:
        return Data(data=self._enqueue())

    def receipt(self) -> Message:
        from overlay_core.review_chat import receipt

        it = self._enqueue()
        return Message(text=receipt(self._trace, it["item_id"]))

"""What every Overlay LangFlow node (``components/overlay/``) shares, written once: the check that the node runs the
installed code, a once-per-run memo and the state-folder input. No LangFlow import: a node mixes
:class:`OverlayNode` in before lfx's ``Component`` (``class OverlayReasoner(OverlayNode, Component)``) and builds its
state-folder input as ``StrInput(**STATE_FOLDER_INPUT)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .component_code import warn_if_edited
from .knowledge import StatePaths, state_paths

#: Keyword arguments of the ``home`` input (advanced): the Overlay state folder.
STATE_FOLDER_INPUT = {"name": "home", "display_name": "State Folder", "value": "", "advanced": True,
                      "info": "Overlay state folder; empty = $OVERLAY_HOME or ./.overlay."}


class OverlayNode:
    """Mixin of every Overlay node. Before each run it says (status, log) when the flow's saved copy of the node's
    code differs from the installed file (:func:`overlay_core.component_code.warn_if_edited`: LangFlow runs the
    copy), and it empties the memo that :meth:`once` fills, so the outputs of one run share what they load."""

    def _pre_run_setup(self):
        self._code_warning = warn_if_edited(self)
        self._memo: dict[str, Any] = {}

    def once(self, key: str, make: Callable[[], Any]) -> Any:
        """``make()`` computed once per run of the node, under ``key`` (every output of the run gets the same)."""
        memo = self.__dict__.setdefault("_memo", {})
        if key not in memo:
            memo[key] = make()
        return memo[key]

    @property
    def state(self) -> StatePaths:
        """The paths of the state folder of the node's ``home`` input (:func:`overlay_core.knowledge.state_paths`)."""
        return state_paths(getattr(self, "home", "") or None)

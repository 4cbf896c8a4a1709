"""The answer as an MCP tool: a real MCP client (the ``mcp`` SDK, streamable HTTP) against LangFlow's MCP server.

The server is the session's ``scripts/ui.sh`` LangFlow (``tests/ui_support.py``). The test imports
``flows/overlay_answer_tool.json`` into a project of its own, ticks it as a tool through the API the UI's "MCP Server"
tab calls (``PATCH /api/v1/mcp/project/<project id>``), authenticates as a client configured by a user would (an API key
made with ``POST /api/v1/api_key/``, sent as ``x-api-key``), lists the tools and calls the answer tool.

The first tests need no server: the reply's text is unchanged by the rewriting LangFlow applies to the chat copy of a
message (the reason the old reply came back twice, once with broken tables; ``overlay_core/tool_reply.py``).
"""

# ruff: noqa: F811  (the fixture `langflow_server` is imported from ui_support on purpose)

from __future__ import annotations

import json
import re
import time

import pytest
from ui_support import ANSWER_TIMEOUT, FLOWS, LangflowServer, langflow_server  # noqa: F401

from overlay_core.settings import ReasonerSettings, specs
from overlay_core.tool_reply import MAIN_SETTINGS, chat_safe, tool_text

QUESTION = "What is a hash table?"
#: The words the reasoner starts this answer with (setting ``start='subject'``); ``max_words`` counts the words after.
OPENING = "A hash table is"


def chat_copy(text: str) -> str:
    """The text as LangFlow's chat copy of a machine's message holds it (lfx's own validator, not a re-implementation)."""
    from lfx.utils.schemas import ChatOutputResponse

    return ChatOutputResponse(message=text, sender="Machine", sender_name="AI", type="message").message


# ---------------------------------------------------------------------------------------------------------------
# The reply's shape (no server)
# ---------------------------------------------------------------------------------------------------------------

def test_a_markdown_table_is_rewritten_by_the_chat_copy_and_a_chat_safe_text_is_not():
    table = "| a | b |\n|---|---|\n| 1 | 2 |"
    assert chat_copy(table) != table  # the rows get blank lines between them: no longer a table
    text = chat_safe(["An answer\nover two lines.", "", "Sources:   1. x\n\n\n2. y", "Settings: top_k=3"])
    assert text == "An answer over two lines.\n\nSources: 1. x 2. y\n\nSettings: top_k=3"
    assert chat_copy(text) == text


def test_tool_text_leads_with_the_answer_then_sources_and_the_main_settings():
    settings = ReasonerSettings(max_words=8).as_dict()
    result = {"question": QUESTION, "answer": "A hash table is a scheme.", "settings": settings, "trace": [],
              "passages": [{"id": f"p{i}", "source": f"FOLDOC:entry {i}", "distance": i / 10, "text": "…\n| x |"}
                           for i in range(7)], "refused": False, "warnings": ["node X was edited"]}
    text = tool_text(result, max_sources=5)
    paragraphs = text.split("\n\n")
    assert paragraphs[0] == "Warning: node X was edited"
    assert paragraphs[1] == "A hash table is a scheme."
    assert paragraphs[2].startswith("Sources: 1. FOLDOC:entry 0 (distance 0.000);") and "and 2 more" in paragraphs[2]
    assert paragraphs[3] == "Settings: " + ", ".join(f"{n}={settings[n]:g}" if isinstance(settings[n], float)
                                                     else f"{n}={settings[n]}" for n in MAIN_SETTINGS)
    assert "max_words=8" in paragraphs[3] and "|" not in text
    assert chat_copy(text) == text
    declined = tool_text({**result, "refused": True, "refusal": "no passage\nis close", "answer": "Not known."})
    assert declined.split("\n\n")[2] == "Declined: no passage is close"
    assert chat_copy(declined) == declined


def test_the_tool_flow_exposes_exactly_the_main_settings_of_the_reasoner():
    """What LangFlow reads to build the tool's schema: the reasoner marked as an input node, its main settings
    ``api_editable`` (lfx's schema code is exercised against a live server below)."""
    flow = json.loads((FLOWS / "overlay_answer_tool.json").read_text())
    assert flow["mcp_enabled"] is True and flow["action_name"] == "overlay_answer"
    reasoner = next(n for n in flow["data"]["nodes"] if n["data"]["type"] == "OverlayReasoner")["data"]["node"]
    assert reasoner["is_input"] is True
    editable = {k for k, v in reasoner["template"].items() if isinstance(v, dict) and v.get("api_editable")}
    assert editable == {s.input for s in specs(ReasonerSettings) if not s.advanced} == set(MAIN_SETTINGS)


# ---------------------------------------------------------------------------------------------------------------
# A real MCP client against the live LangFlow server
# ---------------------------------------------------------------------------------------------------------------

def _import_tool_flow(server: LangflowServer) -> tuple[str, str]:
    """A new project holding a copy of the saved tool flow, not yet ticked as a tool; returns (project id, flow id).

    The copy gets a new id and name (the saved one is already loaded into the starter project of this server)."""
    stamp = int(time.time() * 1000)
    flow = json.loads((FLOWS / "overlay_answer_tool.json").read_text())
    for key in ("id", "endpoint_name", "mcp_enabled"):
        flow.pop(key)
    flow["name"] = f"Overlay Answer Tool (MCP test {stamp})"
    r = server.post("/api/v1/projects/", json={"name": f"MCP test {stamp}", "description": "tests/test_mcp.py"})
    assert r.status_code == 201, r.text
    project = r.json()["id"]
    r = server.post("/api/v1/flows/upload/", params={"folder_id": project},
                    files={"file": ("overlay_answer_tool.json", json.dumps(flow), "application/json")})
    assert r.status_code == 201, r.text
    (uploaded,) = r.json()
    assert uploaded["folder_id"] == project and not uploaded["mcp_enabled"]
    return project, uploaded["id"]


@pytest.mark.browser
async def test_an_mcp_client_lists_the_answer_tool_with_its_settings_and_gets_one_well_formed_answer(langflow_server):
    import httpx
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    server = langflow_server
    # the saved flow comes ticked: `make ui` serves the tool from its first start
    starter = server.get("/api/v1/flows/" + server.flows["overlay_answer_tool"]).json()
    assert starter["mcp_enabled"] is True and starter["action_name"] == "overlay_answer"

    project, flow_id = _import_tool_flow(server)
    assert server.get(f"/api/v1/mcp/project/{project}").json()["tools"] == []  # not a tool until ticked
    r = server.patch(f"/api/v1/mcp/project/{project}", json={"settings": [
        {"id": flow_id, "mcp_enabled": True, "action_name": "overlay_answer",
         "action_description": "Answer a question from Overlay's knowledge base."}]})
    assert r.status_code == 200, r.text
    r = server.post("/api/v1/api_key/", json={"name": "tests/test_mcp.py"})
    assert r.status_code == 200, r.text
    headers = {"x-api-key": r.json()["api_key"]}

    url = f"{server.url}/api/v1/mcp/project/{project}/streamable"
    # an answer takes 5-40 s (the first one loads the models): the read timeout is the answer's, as in ui_support
    http = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(60, read=ANSWER_TIMEOUT))
    async with http, streamable_http_client(url, http_client=http) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = {t.name: t for t in (await session.list_tools()).tools}
            assert set(tools) == {"overlay_answer"}
            schema = tools["overlay_answer"].inputSchema
            props = schema["properties"]
            kinds = {s.name: {int: "integer", float: "number"}[s.type] for s in specs(ReasonerSettings)
                     if s.name in MAIN_SETTINGS}
            # the question, the main settings (typed) and LangFlow's own session id; no handle, no advanced setting
            assert set(props) == {"input_value", "session_id", *MAIN_SETTINGS}
            assert {n: props[n]["type"] for n in MAIN_SETTINGS} == kinds
            assert "(int 1-500; default 30)" in props["max_words"]["description"]
            assert schema["required"] == []

            default = await session.call_tool("overlay_answer", {"input_value": QUESTION})
            short = await session.call_tool("overlay_answer", {"input_value": QUESTION, "max_words": 8})
            bad = await session.call_tool("overlay_answer", {"input_value": QUESTION, "max_words": 600})

    for res in (default, short):
        assert not res.isError, res.content
        assert len(res.content) == 1, [c.text[:200] for c in res.content]  # once, not twice
        text = res.content[0].text
        answer = text.split("\n\n")[0]
        assert answer.startswith(OPENING), text
        assert text.count(answer) == 1
        assert chat_copy(text) == text and not re.search(r"^\s*\|", text, re.M)  # no table, nothing to break
        assert "\nSources: 1. FOLDOC:hash table (distance " in text
    d_text, s_text = default.content[0].text, short.content[0].text
    assert "max_words=30" in d_text and "max_words=8" in s_text  # the argument reached the reasoner
    d_answer, s_answer = d_text.split("\n\n")[0], s_text.split("\n\n")[0]
    # max_words counts the words after the opening words ('A hash table is'); a "what is" question is not one of
    # the who/when/which/how questions that may go on to finish a sentence (finish_sentence)
    assert len(s_answer.split()) <= len(OPENING.split()) + 8 < len(d_answer.split()), (s_answer, d_answer)
    # a value out of bounds: an error result naming the setting, the range and the value
    assert bad.isError and "setting `max_words` must be an integer in [1, 500], got 600" in bad.content[0].text

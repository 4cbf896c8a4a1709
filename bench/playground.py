"""Benchmark: Enter -> answer in the LangFlow Playground, in a fresh chat and in a chat that holds many answers.

Target (issue 17): in a chat that holds 20 traced answers, the time from Enter to the complete answer is at most
1.5x the time in a fresh chat. Before issue 17 every reply carried the full Markdown trace (one wide table per
step, ~20-60 KB of Markdown) and the Playground re-rendered every message of the chat as a new one streamed in.

What it does: builds a small FOLDOC state folder (the tests' subset, ``tests/conftest.py::SUBSET``), starts
LangFlow as ``make ui`` does (``tests/ui_support.py``), warms the answer flow up once through the run API (the
first run loads the models; not counted), opens the Overlay Answer flow in headless Chromium and types questions
into ONE Playground chat, one after the other. For each it measures Enter -> the new AI message is complete (it
holds ``**Stopped:**``), polling the page every 0.1 s:

* ``fresh``: answers 1..N (the chat holds 0..N-1 answers);
* ``after``: answers H+1..H+N, after the chat holds H answers (H = ``--history``, 20 with ``--full``).

Also the same questions through ``POST /api/v1/run`` (no browser) for scale, and the reply's size.

Usage: ``.venv/bin/python bench/playground.py`` (quick: H=4, N=2, ~5-8 min with the server start) or
``--full`` (H=20, N=3, ~10-20 min on 2 shared cores). Skipped (exit 0, a JSON line with ``"skipped"``) when
Chromium or chromedriver is missing. Bounded: ``--budget`` seconds (default 1500) for the whole run.

Prints a table, then ONE JSON object on the last stdout line:
``{"history": H, "fresh_s_median": …, "after_s_median": …, "ratio": …, …}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import ui_support as U  # noqa: E402

QUESTIONS = [f"What is {w}?" for w in ("a hash table", "a compiler", "TCP", "a stack", "a queue", "Unix",
                                       "a kernel", "a cache", "recursion", "a thread", "a deadlock", "an array")]

#: the number of AI messages and whether the last one is complete; cheap (no message text crosses the wire)
LAST_AI_JS = """const all = document.querySelectorAll('[data-testid^="chat-message-AI-"]');
const last = all.length ? all[all.length - 1].getAttribute('data-testid') : '';
return [all.length, last.includes(arguments[0]), last.length];"""


def ask_timed(driver, question: str, timeout: float) -> tuple[float, int]:
    """Type ``question`` into the open Playground; seconds from Enter to the complete new AI message, its size."""
    from selenium.webdriver.common.keys import Keys

    box = U.playground_input(driver, "bench-playground")
    before = driver.execute_script(LAST_AI_JS, U.ANSWER_DONE)[0]
    box.click()
    box.send_keys(question)
    t0 = time.perf_counter()
    box.send_keys(Keys.ENTER)
    while True:
        n, done, size = driver.execute_script(LAST_AI_JS, U.ANSWER_DONE)
        if n > before and done:
            return time.perf_counter() - t0, size
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"no complete answer to {question!r} after {timeout:.0f} s")
        time.sleep(0.1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="the issue's measurement: 20 answers in the chat, 3 timed")
    ap.add_argument("--history", type=int, default=None, help="answers in the chat before the 'after' ones")
    ap.add_argument("-n", type=int, default=None, help="timed answers in each state")
    ap.add_argument("--budget", type=float, default=1500.0, help="seconds for the whole run (then it stops)")
    a = ap.parse_args()
    history = a.history if a.history is not None else (20 if a.full else 4)
    n = a.n if a.n is not None else (3 if a.full else 2)
    missing = U.chromium_missing()
    if missing:
        print(f"bench/playground.py skipped: {missing}")
        print(json.dumps({"skipped": missing}))
        return 0
    t_start = time.perf_counter()
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import SUBSET

    from overlay_core.knowledge import build_knowledge

    tmp = Path(tempfile.mkdtemp(prefix="overlay-bench-playground-"))
    home = tmp / "foldoc"
    build_knowledge(home, headwords=SUBSET, order=3)
    server = U._start_server(home, tmp)
    driver = None
    rows: list[dict] = []
    try:
        flow = U.load_flow(ROOT / "flows" / "overlay_answer.json")
        api = []
        for q in QUESTIONS[:1] + QUESTIONS[:n]:  # the first run loads the models: not counted
            t0 = time.perf_counter()
            r = server.run(flow["id"], q)
            api.append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text[:500]
        api = api[1:]
        driver = U.new_browser(tmp / "chromium-profile")
        U.open_flow(driver, server, flow["id"], len(flow["data"]["nodes"]), "bench-playground")
        for k in range(history + n):
            left = a.budget - (time.perf_counter() - t_start)
            if left < 30:
                print(f"budget of {a.budget:.0f} s spent after {k} answers: stopping", file=sys.stderr)
                break
            q = QUESTIONS[k % len(QUESTIONS)]
            s, size = ask_timed(driver, q, min(300.0, left))
            held = k
            rows.append({"k": k + 1, "held": held, "question": q, "s": round(s, 2), "reply_chars": size})
            print(f"  answer {k + 1:>2} (chat held {held:>2}): {s:6.2f} s  reply {size} chars", file=sys.stderr)
    finally:
        if driver is not None:
            driver.quit()
        U.stop_process_group(server.proc)
    fresh = [r["s"] for r in rows if r["k"] <= n]
    after = [r["s"] for r in rows if r["k"] > history]
    print(f"{'answer':>6} {'chat held':>9} {'Enter->answer s':>16} {'reply chars':>11}  question")
    for r in rows:
        print(f"{r['k']:>6} {r['held']:>9} {r['s']:>16.2f} {r['reply_chars']:>11}  {r['question']}")
    med = (lambda xs: round(statistics.median(xs), 2) if xs else None)
    out = {"history": history, "n": n, "fresh_s": fresh, "after_s": after, "fresh_s_median": med(fresh),
           "after_s_median": med(after), "ratio": (round(med(after) / med(fresh), 2) if fresh and after else None),
           "api_s_median": med(api), "reply_chars_median": med([r["reply_chars"] for r in rows]),
           "total_s": round(time.perf_counter() - t_start, 1)}
    print(f"fresh median {out['fresh_s_median']} s, after {history} answers {out['after_s_median']} s, "
          f"ratio {out['ratio']} (target <= 1.5); API {out['api_s_median']} s")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

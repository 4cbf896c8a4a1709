#!/usr/bin/env bash
# Start the LangFlow UI on 127.0.0.1 with the Overlay components and the saved flows loaded.
#
# Usage: scripts/ui.sh [PORT] [extra `langflow run` options...]      (make ui, make ui PORT=7861)
#
# - Overlay components: passed with --components-path <repo>/components AND, by default, with
#   LANGFLOW_COMPONENTS_PATH=<repo>/components (LangFlow merges both; duplicates are dropped).
#   Set LANGFLOW_COMPONENTS_PATH to your own folder(s) (':'-separated) to add components of yours,
#   or to "" to rely on the CLI flag alone (the browser tests do this to prove the flag works).
# - Saved flows: every flows/*.json is upserted by id at startup (LANGFLOW_LOAD_FLOWS_PATH).
# - State: $OVERLAY_HOME (default <repo>/.overlay); LangFlow's database and config go to
#   $OVERLAY_HOME/langflow. Build the knowledge first (`make ui` does: `overlay build`).
# - Offline: LiteLLM's model-price download is skipped (LITELLM_LOCAL_MODEL_COST_MAP); the
#   remaining "could not fetch" warnings at startup are harmless.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PORT="${1:-7860}"
HOST=127.0.0.1
# OVERLAY_VENV: the environment to run LangFlow from (default <repo>/.venv; a git worktree has none of its own).
LANGFLOW="${OVERLAY_VENV:-$ROOT/.venv}/bin/langflow"

if [ ! -x "$LANGFLOW" ]; then
  echo "error: $LANGFLOW not found; install the project environment first: make install" >&2
  exit 2
fi
case "$PORT" in
  ''|*[!0-9]*) echo "error: PORT must be a number, got '$PORT' (usage: scripts/ui.sh [PORT])" >&2; exit 2 ;;
esac
# LangFlow silently moves to another port when the asked one is busy; fail clearly instead.
if (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; then
  echo "error: port $PORT on $HOST is already in use; choose another: make ui PORT=$((PORT + 1))" >&2
  exit 2
fi

export OVERLAY_HOME="${OVERLAY_HOME:-$ROOT/.overlay}"
DATA="$OVERLAY_HOME/langflow"
mkdir -p "$DATA"
if [ ! -f "$OVERLAY_HOME/adjacency.safetensors" ]; then
  echo "warning: no knowledge in $OVERLAY_HOME yet; the answer flow will fail until you run" \
       "\`.venv/bin/overlay build\` (or the Overlay Build Knowledge flow)" >&2
fi

export LANGFLOW_CONFIG_DIR="$DATA"
export LANGFLOW_DATABASE_URL="${LANGFLOW_DATABASE_URL:-sqlite:///$DATA/langflow.db}"
LANGFLOW_COMPONENTS_PATH="${LANGFLOW_COMPONENTS_PATH-$ROOT/components}"
if [ -n "$LANGFLOW_COMPONENTS_PATH" ]; then
  export LANGFLOW_COMPONENTS_PATH
else  # LangFlow 1.13 dies at startup on an empty value ("The path needs to start with ''")
  unset LANGFLOW_COMPONENTS_PATH
fi
export LANGFLOW_LOAD_FLOWS_PATH="$ROOT/flows"
export LANGFLOW_LOAD_FLOWS_OVERWRITE_ON_NAME_MATCH=true
export LANGFLOW_AUTO_LOGIN="${LANGFLOW_AUTO_LOGIN:-true}"
export LANGFLOW_SKIP_AUTH_AUTO_LOGIN="${LANGFLOW_SKIP_AUTH_AUTO_LOGIN:-true}"
export DO_NOT_TRACK=true LANGFLOW_DO_NOT_TRACK=true
export LITELLM_LOCAL_MODEL_COST_MAP="${LITELLM_LOCAL_MODEL_COST_MAP:-True}"
# The flows' code imports overlay_core: make the checkout importable even without `uv pip install -e .`.
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

echo "LangFlow UI: http://$HOST:$PORT  (starting takes about a minute; sidebar category 'Overlay';" \
     "flows 'Overlay Answer', 'Overlay Review', ... in the project list; state: $OVERLAY_HOME)"
exec "$LANGFLOW" run --host "$HOST" --port "$PORT" --components-path "$ROOT/components" \
  --no-open-browser "${@:2}"

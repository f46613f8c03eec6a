#!/usr/bin/env bash
# Sets up a fresh checkout and runs the bot. With no TELEGRAM_BOT_TOKEN it runs the local
# sandbox: open the address it prints and chat with the bot in your browser.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/crisis-comms run "$@"

#!/bin/sh
# What the tests need beyond Python, from Debian's package manager, installed only when missing:
#   PostgreSQL's server programs (initdb, pg_ctl): tests/tracking/test_team_store.py starts its
#     own cluster;
#   Chromium (/usr/bin/chromium): tests/ui/ drives `mlflow ui` in it, headless, with Playwright.
# The README's test command runs this first. Without apt-get (or root), it says which tests will
# fail and what to install, and the rest still runs.
missing=""
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    missing="$missing postgresql"
fi
if ! command -v chromium >/dev/null 2>&1; then
    missing="$missing chromium"
fi
[ -z "$missing" ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo"
echo "installing Debian's$missing (what the tests need beyond Python)" >&2
if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
    --no-install-recommends $missing >/dev/null; }; then
    echo "could not install$missing: tests/tracking/test_team_store.py (postgresql) and" \
        "tests/ui/ (chromium) will fail; install them with apt-get install$missing" >&2
fi
exit 0

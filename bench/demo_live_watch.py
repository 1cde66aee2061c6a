"""Watch a running demo (`bin/run`) stay live: every few minutes, log in as each demo person as a
browser would and check that the dashboard shows a forecast ("No forecast right now" never),
and count what arrived and what was scored — all over HTTP, as the people see it.

    bin/run --bind 127.0.0.1:8017 &                       # in another terminal, or backgrounded
    .venv/bin/python bench/demo_live_watch.py --base http://127.0.0.1:8017 --rounds 7 --every 300

Per person and round it prints: the latest reading's age, whether a forecast is shown, the
replayed readings stored so far (live-upload imports, /api/imports/), the forecasts logged and
their points matched with a reading (/api/predictions/, every horizon) and the dashboard's "How
past forecasts did" counts at 30/60 min (the dashboard's own forecast counts among the logged
ones: each look makes one). At the end
it prints the change over the run and exits 1 if any dashboard lacked a forecast.
Stdlib only (urllib with a cookie jar), so it runs with any Python 3.11.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import re
import sys
import time
import urllib.parse
import urllib.request
from datetime import datetime, timezone

NO_FORECAST = "No forecast right now"
DEFAULT_PEOPLE = [f"subject{i}" for i in range(1, 6)]


class Session:
    def __init__(self, base: str):
        self.base = base.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=60) as response:
            return response.read().decode("utf-8")

    def login(self, username: str, password: str) -> None:
        page = self.get("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        body = urllib.parse.urlencode({"username": username, "password": password,
                                       "csrfmiddlewaretoken": token}).encode()
        request = urllib.request.Request(self.base + "/login/", data=body, headers={"Referer": self.base + "/login/"})
        with self.opener.open(request, timeout=60) as response:
            if response.geturl().rstrip("/").endswith("/login"):
                raise SystemExit(f"could not log in as {username}")


def look(base: str, username: str, password: str) -> dict:
    session = Session(base)
    session.login(username, password)
    html = session.get("/")
    latest = re.search(r'<time datetime="([^"]+)">', html)
    age_min = None
    if latest:
        age_min = (datetime.now(timezone.utc) - datetime.fromisoformat(latest.group(1))).total_seconds() / 60
    scored = dict(re.findall(r'data-horizon="(\d+)" data-scored="(\d+)"', html))
    imports = json.loads(session.get("/api/imports/?limit=100"))
    replayed = sum(row["n_created"] for row in imports["results"] if row["source"] == "nightscout-upload")
    forecasts, matched, path = 0, 0, "/api/predictions/?limit=100"
    while path:
        page = json.loads(session.get(path))
        forecasts = page["count"]
        matched += sum(point["actual"] is not None for log in page["results"] for point in log["points"])
        path = page["next"] and page["next"].removeprefix(session.base)
    return {
        "forecast": NO_FORECAST not in html and 'class="forecast-table"' in html,
        "age_min": age_min,
        "replayed": replayed,
        "forecasts": forecasts,
        "matched": matched,
        "scored_30": int(scored.get("30", 0)),
        "scored_60": int(scored.get("60", 0)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    parser.add_argument("--people", nargs="*", default=DEFAULT_PEOPLE)
    parser.add_argument("--password", default="glucast-demo")
    parser.add_argument("--rounds", type=int, default=7, help="checks (the first at once)")
    parser.add_argument("--every", type=float, default=300, help="seconds between checks")
    args = parser.parse_args()

    history: dict[str, list[dict]] = {name: [] for name in args.people}
    for round_no in range(args.rounds):
        if round_no:
            time.sleep(args.every)
        stamp = datetime.now(timezone.utc).strftime("%H:%M:%S")
        for name in args.people:
            seen = look(args.base, name, args.password)
            history[name].append(seen)
            age = f"{seen['age_min']:.1f}" if seen["age_min"] is not None else "-"
            print(f"{stamp} round {round_no} {name:<9} forecast={'yes' if seen['forecast'] else 'NO '} "
                  f"latest {age:>5} min old  replayed {seen['replayed']:>4}  forecasts {seen['forecasts']:>5}  "
                  f"matched points {seen['matched']:>5}  "
                  f"scored 30/60 min (24 h) {seen['scored_30']:>4}/{seen['scored_60']:<4}", flush=True)

    print("\nover the run (first check -> last check):")
    all_ok = True
    for name, seen in history.items():
        first, last = seen[0], seen[-1]
        ok = sum(s["forecast"] for s in seen)
        all_ok &= ok == len(seen)
        worst_age = max(s["age_min"] for s in seen if s["age_min"] is not None)
        print(f"  {name:<9} forecast on {ok}/{len(seen)} checks, oldest latest reading {worst_age:.1f} min; "
              f"readings replayed +{last['replayed'] - first['replayed']} ({last['replayed']} in all), "
              f"forecasts +{last['forecasts'] - first['forecasts']}, matched points "
              f"+{last['matched'] - first['matched']} ({last['matched']} in all), scored at 30 min "
              f"{first['scored_30']} -> {last['scored_30']}, at 60 min {first['scored_60']} -> {last['scored_60']}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Run on the hub's node: log in as a user through JupyterHub, then start or stop the user's
server through the REST API. Prints one JSON line; reads the password from a file."""

import json
import socket
import sys
import time

import requests

BASE = "https://{host}:{port}"


def main(
    port: str, ca_file: str, user: str, password_file: str, action: str, timeout: float
) -> None:
    base = BASE.format(host=socket.gethostname(), port=port)
    with open(password_file) as handle:
        password = handle.read().strip()
    session = requests.Session()
    session.verify = ca_file  # the password goes only to the hub the testbed CA vouches for
    session.get(f"{base}/hub/login", timeout=10)
    xsrf = session.cookies.get("_xsrf", "")
    login = session.post(
        f"{base}/hub/login",
        timeout=30,
        allow_redirects=False,
        data={"username": user, "password": password, "_xsrf": xsrf},
    )
    if login.status_code != 302:
        print(json.dumps({"step": "login", "status": login.status_code}))
        return
    headers = {"X-XSRFToken": xsrf, "Referer": f"{base}/hub/"}
    made = session.post(
        f"{base}/hub/api/users/{user}/tokens",
        headers=headers,
        timeout=10,
        json={"note": "testbed check", "expires_in": 600},
    )
    if made.status_code not in (200, 201):
        print(json.dumps({"step": "token", "status": made.status_code, "body": made.text[:300]}))
        return
    api = {"Authorization": f"token {made.json()['token']}"}
    url = f"{base}/hub/api/users/{user}/server"
    answer = (
        requests.post(url, headers=api, timeout=60)
        if action == "start"
        else requests.delete(url, headers=api, timeout=60)
    )
    deadline = time.monotonic() + timeout
    state = {}
    while time.monotonic() < deadline:
        model = requests.get(f"{base}/hub/api/users/{user}", headers=api, timeout=10).json()
        state = model.get("servers", {}).get("", {})
        if (action == "start" and state.get("ready")) or (action == "stop" and not state):
            break
        time.sleep(2)
    print(json.dumps({"step": action, "status": answer.status_code, "server": state}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], float(sys.argv[6]))

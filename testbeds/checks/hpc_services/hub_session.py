"""Run on the hub's node: log in as a user through JupyterHub (at the testbed's token
issuer where the hub has an OAuth login, else with the hub's password form), then start or
stop the user's server through the REST API, or run code in a kernel of the running server
(through the hub's proxy, over its websocket). Prints one JSON line; reads the password
from a file.

Usage: hub_session.py PORT CA_FILE USER PASSWORD_FILE login|form-login|start|stop TIMEOUT
       hub_session.py PORT CA_FILE USER PASSWORD_FILE run TIMEOUT KERNEL CODE_FILE
"""

import asyncio
import datetime
import json
import socket
import sys
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import requests
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

BASE = "https://{host}:{port}"


def issuer_login(
    session: requests.Session, base: str, authorize: str, user: str, password: str
) -> dict[str, object]:
    """Log in the way a browser does through the testbed's token issuer (glewlwyd): the hub
    sent the user to the issuer's `authorize` URL; the user logs in there with the password
    (glewlwyd's login API, which its login page calls), grants the hub the scope it asked
    for, and the issuer sends the user back to the hub's callback with a code."""
    query = parse_qs(urlsplit(authorize).query)
    issuer = "{0.scheme}://{0.netloc}".format(urlsplit(authorize))
    auth = session.post(
        f"{issuer}/api/auth/", json={"username": user, "password": password}, timeout=30
    )
    if auth.status_code != 200:
        return {"step": "issuer login", "status": auth.status_code, "via": "issuer"}
    client, scope = query["client_id"][0], query["scope"][0]
    granted = session.put(f"{issuer}/api/auth/grant/{client}", json={"scope": scope}, timeout=10)
    if granted.status_code != 200:
        return {"step": "grant", "status": granted.status_code, "via": "issuer"}
    # What the login page does once the user has logged in and consented: back to the
    # authorize URL with g_continue, which answers with the hub's callback and a code.
    back = session.get(f"{authorize}&g_continue", timeout=30, allow_redirects=False)
    callback = back.headers.get("Location", "")
    if not callback.startswith(f"{base}/hub/oauth_callback?") or "code=" not in callback:
        error = parse_qs(urlsplit(callback).query).get("error", [""])[0]
        return {"step": "authorize", "status": back.status_code, "error": error, "via": "issuer"}
    done = session.get(callback, timeout=30, allow_redirects=False)
    return {"step": "login", "status": done.status_code, "via": "issuer"}


def password_login(
    session: requests.Session, base: str, user: str, password: str
) -> dict[str, object]:
    """Post the hub's own login form (PAM)."""
    session.get(f"{base}/hub/login", timeout=10)
    answer = session.post(
        f"{base}/hub/login",
        timeout=30,
        allow_redirects=False,
        data={"username": user, "password": password, "_xsrf": session.cookies.get("_xsrf", "")},
    )
    return {"step": "login", "status": answer.status_code, "via": "password form"}


def login(base: str, ca_file: str, user: str, password: str, form: bool = False) -> dict:
    """The hub API headers of a fresh token for the user, or the failed step. A hub with an
    OAuth login (`/hub/oauth_login` redirects) is logged in to through its issuer, unless
    `form` asks for the hub's own password form."""
    session = requests.Session()
    session.verify = ca_file  # the password goes only to servers the testbed CA vouches for
    # The hub's OAuth login, if it has one, answers with the issuer's authorize URL (and
    # sets the state cookie the callback checks).
    start = session.get(f"{base}/hub/oauth_login", timeout=10, allow_redirects=False)
    if start.status_code == 302 and not form:
        logged_in = issuer_login(session, base, start.headers["Location"], user, password)
    else:
        logged_in = password_login(session, base, user, password)
    if logged_in["step"] != "login" or logged_in["status"] != 302:
        return logged_in
    xsrf = session.cookies.get("_xsrf", "")
    if not xsrf:  # an OAuth login never showed the hub's form, which sets it
        session.get(f"{base}/hub/home", timeout=10)
        xsrf = session.cookies.get("_xsrf", "")
    headers = {"X-XSRFToken": xsrf, "Referer": f"{base}/hub/"}
    made = session.post(
        f"{base}/hub/api/users/{user}/tokens",
        headers=headers,
        timeout=10,
        json={"note": "testbed check", "expires_in": 600},
    )
    if made.status_code not in (200, 201):
        return {"step": "token", "status": made.status_code, "body": made.text[:300]}
    return {"Authorization": f"token {made.json()['token']}", "via": logged_in["via"]}


def start_or_stop(base: str, api: dict, ca_file: str, user: str, action: str, timeout: float):
    url = f"{base}/hub/api/users/{user}/server"
    answer = (
        requests.post(url, headers=api, timeout=60, verify=ca_file)
        if action == "start"
        else requests.delete(url, headers=api, timeout=60, verify=ca_file)
    )
    deadline = time.monotonic() + timeout
    state = {}
    while time.monotonic() < deadline:
        model = requests.get(
            f"{base}/hub/api/users/{user}", headers=api, timeout=10, verify=ca_file
        ).json()
        state = model.get("servers", {}).get("", {})
        if (action == "start" and state.get("ready")) or (action == "stop" and not state):
            break
        time.sleep(2)
    return {"step": action, "status": answer.status_code, "server": state}


async def execute(ws_url: str, api: dict, ca_file: str, code: str, timeout: float) -> dict:
    """Send one execute_request on the kernel's channels; collect stdout until it is idle."""
    connection = await websocket_connect(HTTPRequest(ws_url, headers=api, ca_certs=ca_file))
    msg_id = uuid.uuid4().hex
    header = {
        "msg_id": msg_id,
        "msg_type": "execute_request",
        "username": "check",
        "session": uuid.uuid4().hex,
        "date": datetime.datetime.now(datetime.UTC).isoformat(),
        "version": "5.3",
    }
    content = {"code": code, "silent": False, "store_history": False, "allow_stdin": False}
    await connection.write_message(
        json.dumps(
            {
                "header": header,
                "parent_header": {},
                "metadata": {},
                "content": content,
                "channel": "shell",
            }
        )
    )
    stdout, stderr, error, status, idle = [], [], None, None, False
    deadline = time.monotonic() + timeout
    # The reply (shell channel) and the idle status (iopub) may come in either order.
    while not (status and idle):
        try:
            raw = await asyncio.wait_for(connection.read_message(), deadline - time.monotonic())
        except (TimeoutError, ValueError):
            error = error or f"no reply within {timeout:.0f} s"
            break
        if raw is None:
            break
        message = json.loads(raw)
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, body = message["msg_type"], message["content"]
        if kind == "stream":
            (stdout if body.get("name") == "stdout" else stderr).append(body["text"])
        elif kind == "error":
            error = f"{body['ename']}: {body['evalue']}"
        elif kind == "execute_reply":
            status = body["status"]
        elif kind == "status" and body["execution_state"] == "idle":
            idle = True
    connection.close()
    return {
        "status": status,
        "error": error,
        "stdout": "".join(stdout),
        "stderr": "".join(stderr)[-2000:],
    }


def run_code(
    base: str, api: dict, ca_file: str, user: str, kernel: str, code: str, timeout: float
) -> dict:
    server = f"{base}/user/{user}/api"
    made = requests.post(
        f"{server}/kernels", headers=api, json={"name": kernel}, timeout=60, verify=ca_file
    )
    if made.status_code not in (200, 201):
        return {"step": "kernel", "status": made.status_code, "body": made.text[:300]}
    kernel_id = made.json()["id"]
    ws_url = f"{server}/kernels/{kernel_id}/channels".replace("https://", "wss://", 1)
    try:
        outcome = asyncio.run(execute(ws_url, api, ca_file, code, timeout))
    finally:
        requests.delete(f"{server}/kernels/{kernel_id}", headers=api, timeout=30, verify=ca_file)
    return {"step": "run", "kernel": kernel, **outcome}


def main(argv: list[str]) -> None:
    port, ca_file, user, password_file, action, timeout = argv[:6]
    base = BASE.format(host=socket.gethostname(), port=port)
    with open(password_file) as handle:
        api = login(base, ca_file, user, handle.read().strip(), form=action == "form-login")
    if "step" in api:
        print(json.dumps(api))
        return
    via = api.pop("via")
    if action in ("login", "form-login"):
        print(json.dumps({"step": "login", "status": 302, "via": via}))
        return
    if action == "run":
        kernel, code_file = argv[6:8]
        with open(code_file) as handle:
            code = handle.read()
        print(json.dumps(run_code(base, api, ca_file, user, kernel, code, float(timeout))))
    else:
        print(json.dumps(start_or_stop(base, api, ca_file, user, action, float(timeout))))


if __name__ == "__main__":
    main(sys.argv[1:])

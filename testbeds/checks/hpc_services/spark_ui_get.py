"""GET a page of a Spark cluster's web UI as its owner: with a JWS (HS256) signed by the UI key
in the cluster's spark-defaults.conf. Prints the HTTP status and whether the page is the
master's. Usage: python3 spark_ui_get.py SPARK_DEFAULTS_CONF URL"""

import base64
import hashlib
import hmac
import sys
import urllib.error
import urllib.request
from pathlib import Path

KEY_SETTING = "spark.org.apache.spark.ui.JWSFilter.param.secretKey"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main(conf: str, url: str) -> None:
    lines = Path(conf).read_text().splitlines()
    settings = dict(line.split(None, 1) for line in lines if line.strip())
    key = base64.urlsafe_b64decode(settings[KEY_SETTING].strip() + "==")
    signing_input = b64url(b'{"alg":"HS256","typ":"JWT"}') + "." + b64url(b"{}")
    signature = b64url(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())
    request = urllib.request.Request(
        url, headers={"Authorization": f"Bearer {signing_input}.{signature}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            page = answer.read().decode(errors="replace")
            print(answer.status, "Spark Master at" in page)
    except urllib.error.HTTPError as error:
        print(error.code, False)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

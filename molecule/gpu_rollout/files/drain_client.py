# -*- coding: utf-8 -*-
# onprem_ai.maintenance test lab: a client of the lab inference server for the drain tests of molecule/gpu_rollout.
#   drain_client.py stream URL MODEL MAX_TOKENS MARK  one streamed chat completion; MARK is created once the answer
#                                                     has started; prints {"done", "chunks", "start", "end"} (epoch s)
#   drain_client.py idle URL SECONDS MARK             one GET /v1/models, then the connection kept open and idle
#                                                     (as a client pool keeps it) for SECONDS; prints {"open": ...}
"""Lab client: a streamed request in flight, or an idle keep-alive connection, during a drain."""

import http.client
import json
import sys
import time
import urllib.parse


def connect(url):
    parts = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)


def stream(url, model, max_tokens, mark):
    conn = connect(url)
    body = {"model": model, "stream": True, "max_tokens": int(max_tokens),
            "messages": [{"role": "user", "content": "a request in flight during a drain"}]}
    start = time.time()
    conn.request("POST", "/v1/chat/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    chunks, done = 0, False
    try:
        while True:
            line = resp.readline()
            if not line:
                break
            if line.startswith(b"data: [DONE]"):
                done = True
                break
            if line.startswith(b"data: "):
                chunks += 1
                if chunks == 1:
                    open(mark, "w", encoding="utf-8").close()
    except (OSError, http.client.HTTPException):
        pass
    conn.close()
    print(json.dumps({"status": resp.status, "done": done, "chunks": chunks, "start": start, "end": time.time()}))


def idle(url, seconds, mark):
    conn = connect(url)
    conn.request("GET", "/v1/models")
    conn.getresponse().read()
    open(mark, "w", encoding="utf-8").close()
    deadline = time.time() + float(seconds)
    while time.time() < deadline:
        time.sleep(0.2)
    # still the same connection? a request on it is answered without reconnecting
    sock = conn.sock
    try:
        conn.request("GET", "/v1/models")
        still_open = conn.getresponse().status == 200 and conn.sock is sock
    except (OSError, http.client.HTTPException):
        still_open = False
    print(json.dumps({"open": still_open}))


if __name__ == "__main__":
    if sys.argv[1] == "stream":
        stream(*sys.argv[2:6])
    else:
        idle(*sys.argv[2:5])

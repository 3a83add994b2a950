# Receipts per second against a running gateway (loopback only): imports 1,000 users, sends 25,000
# messages (campaign "rc"), signs 4 receipts per message with the receipt key (same HMAC as
# ReceiptTokens) and posts them in 100 requests of 1,000 from 4 threads; prints the rate and the funnel.
# Usage: see loadtest/README.md, "Receipts".
import json, hmac, hashlib, base64, time, urllib.request, sys
BASE = sys.argv[1]; KEY = sys.argv[2]; RKEY = base64.b64decode(sys.argv[3])
H = {"Authorization": "Bearer " + KEY, "Content-Type": "application/json"}
def call(method, path, body=None, auth=True):
    req = urllib.request.Request(BASE + path, data=None if body is None else json.dumps(body).encode(), method=method,
                                 headers=H if auth else {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")
users = ["r%d" % i for i in range(1000)]
s, _ = call("POST", "/v1/apps/demo/users", {"users": [{"user": u, "devices": [{"id": "d", "platform": "apns", "token": "%064x" % i}]} for i, u in enumerate(users)]})
assert s == 200, s
ids = []; owners = []
for b in range(25):
    msgs = [{"user": users[i % 1000], "title": "t", "campaign": "rc"} for i in range(1000)]
    s, r = call("POST", "/v1/batches", {"app": "demo", "messages": msgs}); assert s == 202, (s, r)
    for i, m in enumerate(r["messages"]): ids.append(m["id"]); owners.append(users[i % 1000])
    bid = r["batchId"]
while True:
    s, r = call("GET", "/v1/batches/" + bid)
    if r.get("done"): break
    time.sleep(0.2)
exp = int(time.time()) + 3600
def tok(mid, user):
    mac = hmac.new(RKEY, ("%s|%s|%d" % (mid, user, exp)).encode(), hashlib.sha256).digest()
    return "k1.%d.%s" % (exp, base64.urlsafe_b64encode(mac).decode().rstrip("="))
items = []
for mid, u in zip(ids, owners):
    t = tok(mid, u)
    for ev in ("delivered", "opened", "clicked", "dismissed"):
        items.append({"messageId": mid, "event": ev, "token": t})
bodies = [json.dumps({"receipts": items[i:i+1000]}).encode() for i in range(0, len(items), 1000)]
import concurrent.futures as cf
def post(b):
    req = urllib.request.Request(BASE + "/v1/receipts", data=b, method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())["applied"]
t0 = time.time()
with cf.ThreadPoolExecutor(4) as ex:
    applied = sum(ex.map(post, bodies))
dt = time.time() - t0
s, f = call("GET", "/v1/campaigns/rc/funnel")
print("receipts %d applied %d in %.2f s = %.0f receipts/s; funnel %s" % (len(items), applied, dt, len(items) / dt, f["counts"]))

#!/usr/bin/env python3
"""Closed-loop EPCIS capture load: `threads` clients each POST 100-event EPCISDocuments to
/epcis/capture for `seconds`, every event an ObjectEvent on a new SGTIN (serials unique
per run), GTINs spread over the shard map's company prefixes. Prints one JSON line:
events/s committed, documents, p50/p99 document latency. Standard library only."""
import http.client, json, sys, threading, time

host, port = sys.argv[1], int(sys.argv[2])
seconds, threads, run = float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
PREFIXES = ["0614141", "9506000", "4012345", "0012345"]  # one per category in the map
EVENTS = 100

def document(client, n):
    events = []
    for i in range(EVENTS):
        prefix = PREFIXES[(n + i) % len(PREFIXES)]
        item = "1" + "0" * (12 - len(prefix) - 1) + "7"  # indicator 1, item ref to 13 digits
        events.append({
            "type": "ObjectEvent", "action": "OBSERVE", "bizStep": "shipping",
            "eventTime": "2024-05-01T09:30:00.000+02:00", "eventTimeZoneOffset": "+02:00",
            "epcList": [f"urn:epc:id:sgtin:{prefix}.{item}.{run}-{client}-{n}-{i}"],
            "readPoint": {"id": "urn:epc:id:sgln:0614141.12345.0"},
        })
    return json.dumps({"type": "EPCISDocument", "schemaVersion": "2.0",
                       "creationDate": "2024-05-01T10:00:00Z",
                       "epcisBody": {"eventList": events}}).encode()

committed, latencies, failures, lock = [0], [], [], threading.Lock()
deadline = time.monotonic() + seconds

def worker(client):
    conn = http.client.HTTPConnection(host, port, timeout=60)
    n = 0
    while time.monotonic() < deadline:
        body = document(client, n)
        n += 1
        started = time.monotonic()
        conn.request("POST", "/epcis/capture", body, {"Content-Type": "application/ld+json"})
        response = conn.getresponse()
        answer = response.read()
        elapsed = time.monotonic() - started
        with lock:
            if response.status == 201:
                committed[0] += len(json.loads(answer)["events"])
                latencies.append(elapsed)
            else:
                failures.append((response.status, answer[:200]))

started = time.monotonic()
workers = [threading.Thread(target=worker, args=(c,)) for c in range(threads)]
for w in workers: w.start()
for w in workers: w.join()
elapsed = time.monotonic() - started
latencies.sort()
pct = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0
print(json.dumps({"events_per_s": committed[0] / elapsed, "events": committed[0],
                  "documents": len(latencies), "failed_documents": len(failures),
                  "p50_ms": pct(0.5), "p99_ms": pct(0.99), "first_failure": str(failures[:1])}))

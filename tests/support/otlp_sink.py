"""A real OTLP/HTTP receiver for the trace tests: oteltest's HTTP sink, bound to 127.0.0.1
on the port given, writing every trace export it receives as one JSON line to the file given.

usage: otlp_sink.py PORT OUT.jsonl [--count]

With --count each line is only the number of spans received, as a collector that does not
keep them would answer (for benchmarks: the time to turn every span into JSON is the
receiver's, not the sender's).
"""

import http.server
import json
import logging
import sys
import time

from google.protobuf.json_format import MessageToDict

import oteltest.sink as sink
from oteltest.sink.handler import RequestHandler

port = int(sys.argv[1])
out = sys.argv[2]
count_only = "--count" in sys.argv[3:]


class Loopback(http.server.HTTPServer):
    # The sink binds every interface; the tests keep to loopback.
    def __init__(self, address, handler):
        super().__init__(("127.0.0.1", address[1]), handler)


sink.HTTPServer = Loopback


class Record(RequestHandler):
    def handle_logs(self, request, headers):
        pass

    def handle_metrics(self, request, headers):
        pass

    def handle_trace(self, request, headers):
        with open(out, "a") as f:
            if count_only:
                n = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
                f.write(f"{n}\n")
            else:
                f.write(json.dumps(MessageToDict(request)) + "\n")


s = sink.HttpSink(Record(), logging.getLogger("otlp-sink"), port=port)
s.start()
while True:
    time.sleep(3600)

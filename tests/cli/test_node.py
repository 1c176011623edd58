"""The demo's echo endpoint from Node's ``ws`` client (installed in tests/interop/node)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.cli.conftest import WAIT, DemoServer

NODE_PEER = Path(__file__).resolve().parent.parent / "interop" / "node"

# Sends a text and a binary message, closes with 1000 once both came back,
# and prints what it saw as one line of JSON.
SCRIPT = """
const WebSocket = require('ws');
const ws = new WebSocket(process.argv[1]);
const received = [];
ws.on('open', () => {
  ws.send('hello from node');
  ws.send(Buffer.from([0, 1, 255]));
});
ws.on('message', (data, isBinary) => {
  received.push(isBinary ? 'binary:' + data.toString('hex') : 'text:' + data.toString());
  if (received.length === 2) ws.close(1000, 'done');
});
ws.on('close', (code, reason) => {
  console.log(JSON.stringify({ received, code, reason: reason.toString(),
                               extensions: ws.extensions }));
});
ws.on('error', (error) => { console.error(String(error)); process.exit(1); });
"""


def test_node_ws_client_against_the_echo_endpoint(demo_server: DemoServer) -> None:
    assert (NODE_PEER / "node_modules" / "ws").is_dir(), (
        "Node's ws is not installed: `make test` runs npm ci in tests/interop/node"
    )
    result = subprocess.run(
        ["node", "-e", SCRIPT, demo_server.uri("/echo")],
        cwd=NODE_PEER,
        capture_output=True,
        timeout=WAIT,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    assert report == {
        "received": ["text:hello from node", "binary:0001ff"],
        "code": 1000,
        "reason": "done",
        # ws offers permessage-deflate by default, and the demo server accepts it.
        "extensions": "permessage-deflate",
    }

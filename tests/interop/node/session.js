'use strict';
// One WebSocket driven by the interop tests: it echoes every message, reports
// what happens as JSON lines on stdout and obeys JSON commands read on stdin.

const readline = require('readline');

function report(event) {
  process.stdout.write(JSON.stringify(event) + '\n');
}

function parseOptions(argv) {
  const options = {};
  for (const arg of argv) {
    const match = /^--([^=]+)=(.*)$/.exec(arg);
    if (!match) throw new Error(`bad argument: ${arg}`);
    options[match[1]] = match[2];
  }
  return options;
}

function drive(ws) {
  report({ event: 'open', protocol: ws.protocol, extensions: ws.extensions });

  ws.on('message', (data, isBinary) => {
    report({ event: 'message', binary: isBinary, length: data.length });
    ws.send(data, { binary: isBinary });
  });
  ws.on('ping', (data) => report({ event: 'ping', data: data.toString('base64') }));
  ws.on('pong', (data) => report({ event: 'pong', data: data.toString('base64') }));
  ws.on('close', (code, reason) => {
    report({ event: 'close', code, reason: reason.toString('utf8') });
  });
  ws.on('error', (error) => report({ event: 'error', message: String(error) }));

  const commands = readline.createInterface({ input: process.stdin });
  commands.on('line', (line) => {
    const command = JSON.parse(line);
    switch (command.cmd) {
      case 'fragments': {
        // Each piece is its own frame: fin stays false until the last one.
        const pieces = command.pieces.map((piece) => Buffer.from(piece, 'base64'));
        pieces.forEach((piece, index) => {
          ws.send(piece, { binary: command.binary, fin: index === pieces.length - 1 });
        });
        break;
      }
      case 'ping':
        ws.ping(Buffer.from(command.data, 'base64'));
        break;
      case 'close':
        ws.close(command.code, command.reason);
        break;
      default:
        report({ event: 'error', message: `unknown command ${command.cmd}` });
    }
  });
  // The test ends the process by closing stdin, or by killing it.
  commands.on('close', () => process.exit(0));
}

// --deflate is "true", "false" or a JSON object of ws's perMessageDeflate options.
function deflateOption(value) {
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  return JSON.parse(value);
}

module.exports = { deflateOption, drive, parseOptions, report };

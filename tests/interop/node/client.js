'use strict';
// Usage: node client.js --url=ws://... --deflate=true|false|{...} --protocols=a,b
// Connects, then drives the connection with session.js.

const WebSocket = require('ws');
const { deflateOption, drive, parseOptions, report } = require('./session');

const options = parseOptions(process.argv.slice(2));
const protocols = options.protocols ? options.protocols.split(',') : [];

const ws = new WebSocket(options.url, protocols, {
  perMessageDeflate: deflateOption(options.deflate),
  maxPayload: 64 * 1024 * 1024,
});
let opened = false;
ws.on('open', () => {
  opened = true;
  drive(ws);
});
ws.on('unexpected-response', (request, response) => {
  report({ event: 'error', message: `HTTP ${response.statusCode}` });
  process.exit(1);
});
// Once open, drive() reports errors.
ws.on('error', (error) => {
  if (!opened) {
    report({ event: 'error', message: String(error) });
    process.exit(1);
  }
});

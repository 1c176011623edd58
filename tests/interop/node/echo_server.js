'use strict';
// Usage: node echo_server.js --port=0 --deflate=true|false|{...} --protocols=a,b
// Prints "READY <port>", then serves one connection at a time with session.js.

const { WebSocketServer } = require('ws');
const { deflateOption, drive, parseOptions } = require('./session');

const options = parseOptions(process.argv.slice(2));
const supported = options.protocols ? options.protocols.split(',') : [];

const server = new WebSocketServer({
  host: '127.0.0.1',
  port: Number(options.port || 0),
  perMessageDeflate: deflateOption(options.deflate),
  maxPayload: 64 * 1024 * 1024,
  // Pick the first of the server's subprotocols that the client offers.
  handleProtocols: (offered) => supported.find((name) => offered.has(name)) || false,
});

server.on('listening', () => {
  process.stdout.write(`READY ${server.address().port}\n`);
});
server.on('connection', (ws) => drive(ws));

// bench/reusebackend/node.js: the Node backend of the connection-reuse scenario
// (bench/reuse.sh): a plain http.Server whose keepAliveTimeout closes keep-alive connections
// idle for IDLE_MS (Node advertises it as "Keep-Alive: timeout=N"). Same /__stats as
// bench/reusebackend: {"accepts":A,"processed":N,"duplicates":D}.
//   node bench/reusebackend/node.js PORT [IDLE_MS]
'use strict';
const http = require('http');
const port = Number(process.argv[2] || 9121);
const idle = Number(process.argv[3] || 1000);
const body = 'x'.repeat(300);
const seen = new Map();
let accepts = 0, processed = 0, duplicates = 0;
const srv = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    if (req.url === '/__stats') {
      res.end(JSON.stringify({accepts, processed, duplicates}));
      return;
    }
    processed++;
    const id = req.headers['x-request-id'];
    if (id) {
      const n = (seen.get(id) || 0) + 1;
      seen.set(id, n);
      if (n > 1) duplicates++;
    }
    res.writeHead(200, {'Content-Type': 'text/plain', 'Content-Length': body.length});
    res.end(body);
  });
});
srv.keepAliveTimeout = idle;
srv.on('connection', () => { accepts++; });
srv.listen(port, '127.0.0.1');

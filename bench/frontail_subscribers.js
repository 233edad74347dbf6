// A benchmark client process for frontail (socket.io 2): the same job as ws_subscribers.py.
//   node bench/frontail_subscribers.js URL CONNECTIONS EXPECTED_LINES
// URL includes frontail's namespace (the md5 of its file list). socket.io-client is the one
// frontail's own npm install brought (NODE_PATH points at that node_modules).
"use strict";
const io = require("socket.io-client");

const [url, connections, expected] = [process.argv[2], +process.argv[3], +process.argv[4]];
const IDLE_MS = 5000;
let open = 0;
let finished = 0;
let lines = 0;
let last = 0;

function done() {
  finished += 1;
  if (finished === connections) {
    console.log(JSON.stringify({ lines, dropped: 0, last, latencies: [] }));
    process.exit(0);
  }
}

for (let i = 0; i < connections; i++) {
  const socket = io(url, { transports: ["websocket"], forceNew: true, reconnection: false });
  let got = 0;
  let idle = null;
  socket.on("connect", () => {
    open += 1;
    if (open === connections) console.log("READY");
  });
  socket.on("line", () => {
    got += 1;
    lines += 1;
    last = Date.now() / 1000;
    clearTimeout(idle);
    if (got === expected) {
      socket.close();
      done();
    } else {
      idle = setTimeout(() => { socket.close(); done(); }, IDLE_MS);
    }
  });
}

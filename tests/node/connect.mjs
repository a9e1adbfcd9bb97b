// One socket.io client (socket.io-client 4.x, websocket transport) connecting with each token
// given: prints one JSON line per token, `{"connected": true}` or `{"connected": false,
// "error": "<connect_error message>"}`, in order, then exits.
//
// usage: node connect.mjs URL TOKEN...   (TOKEN "-" = no auth object)
import { io } from "socket.io-client";

const [url, ...tokens] = process.argv.slice(2);

function connect(token) {
  return new Promise((resolve) => {
    const opts = { transports: ["websocket"], reconnection: false, timeout: 10000 };
    if (token !== "-") opts.auth = { token };
    const s = io(url, opts);
    s.on("connect", () => {
      s.close();
      resolve({ connected: true });
    });
    s.on("connect_error", (e) => {
      s.close();
      resolve({ connected: false, error: String(e && e.message) });
    });
  });
}

for (const token of tokens) {
  console.log(JSON.stringify(await connect(token)));
}
process.exit(0);

// Preloaded with `node -r` into a server that listens on every interface (server-everything's
// streamableHttp mode only takes PORT): binds it to 127.0.0.1 instead and prints the bound
// port as "writ-e2e-port N" on stderr, so tests can use PORT=0 (any free port).
"use strict";
const net = require("node:net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first))) {
    const cb = args.find((a) => typeof a === "function");
    this.once("listening", () => process.stderr.write(`writ-e2e-port ${this.address().port}\n`));
    return cb ? listen.call(this, Number(first), "127.0.0.1", cb) : listen.call(this, Number(first), "127.0.0.1");
  }
  return listen.apply(this, args);
};

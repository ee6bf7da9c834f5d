// Preload (node --import) for scripts/conformance.sh: server-everything's HTTP mode calls
// app.listen(PORT) on every interface and has no host option, so this forces every
// net.Server.listen(port[, ...]) in the process onto 127.0.0.1 (loopback only).
import net from "node:net";

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "number" || typeof args[0] === "string") {
    const port = Number(args[0]);
    const rest = args.slice(1).filter((a) => typeof a === "function");
    return listen.call(this, { port, host: "127.0.0.1" }, ...rest);
  }
  if (args[0] && typeof args[0] === "object" && !args[0].path) {
    args[0] = { ...args[0], host: "127.0.0.1" };
  }
  return listen.apply(this, args);
};

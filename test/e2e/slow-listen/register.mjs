// Loaded with `node --import` into a delegate process under test: its first
// listen on the port in E2E_SLOW_LISTEN ("<port>:<ms>") happens
// only after that many milliseconds, as on a machine so loaded that starting
// the servers takes that long. Other listens (the sign-in's loopback
// listener, the other servers) are untouched.
import net from 'node:net';

const [port, ms] = (process.env.E2E_SLOW_LISTEN ?? '').split(':').map(Number);
if (port && ms) {
  const listen = net.Server.prototype.listen;
  let delayed = false;
  net.Server.prototype.listen = function (...args) {
    const options = args[0];
    const wanted = typeof options === 'object' && options !== null ? Number(options.port) : Number(options);
    if (delayed || wanted !== port) return listen.apply(this, args);
    delayed = true;
    setTimeout(() => listen.apply(this, args), ms);
    return this;
  };
}

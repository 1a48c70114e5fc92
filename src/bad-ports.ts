// The ports no browser and no fetch() will send a request to: the Fetch standard's "bad ports" (§2.9, port blocking),
// which Chromium refuses with net::ERR_UNSAFE_PORT and Node's fetch (undici) with a cause whose message is 'bad port'.
// A server of delegate's on one cannot be reached by the CLI (which uses fetch), nor its pages by a browser, nor the
// sign-in's loopback listener by the browser it sends back: found in review (s30), `--auth-port 6665` was taken and
// the CLI said the server "accepts connections but does not answer", with nothing listening there.

/** The Fetch standard's list (https://fetch.spec.whatwg.org/#bad-port), as Node 20's fetch refuses it. */
const BAD_PORTS: ReadonlySet<number> = new Set([
  1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135,
  137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720,
  1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
]);

/** Whether browsers and fetch refuse to send a request to `port` (a bad port in the Fetch standard). */
export function isBadPort(port: number): boolean {
  return BAD_PORTS.has(port);
}

/** Why `port` cannot be used, in the same words wherever it is refused. */
export function badPortText(port: number): string {
  return `browsers and fetch refuse port ${port} (a "bad port" in the Fetch standard)`;
}

// Holding the signals that end a command (Ctrl-C's SIGINT, SIGTERM from
// `timeout`, systemd or CI, SIGHUP from a closed terminal) across the few
// moments when ending would do harm: between posting a refresh token and
// saving what replaced it. Ended there, the process leaves a spent refresh
// token in the cache, and the next command's refresh is a replay that
// revokes the family (RFC 9700 §4.14.2). A signal that arrives meanwhile is
// raised again once the work is done, so the process ends as it would have
// (a shell reports 130, 143, 129), only later: at most the request timeout.
// kill -9 cannot be held; the authorization server's side of this is
// src/authz/grant-refresh.ts (a client that hung up gets no rotation).

const HELD = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

export interface SignalHold {
  /** Starts holding (again a no-op while held). */
  hold(): void;
  /** Stops holding; a signal that came meanwhile is raised again now. */
  release(): void;
}

/** A hold on this process's ending signals, not yet taken. */
export function signalHold(): SignalHold {
  let holding = false;
  let arrived: NodeJS.Signals | undefined;
  const note = (signal: NodeJS.Signals) => {
    arrived ??= signal;
  };
  return {
    hold() {
      if (holding) return;
      holding = true;
      for (const signal of HELD) process.on(signal, note);
    },
    release() {
      if (!holding) return;
      holding = false;
      for (const signal of HELD) process.off(signal, note);
      // With our listener gone, the signal does what it would have done (Node's default: end the process by it).
      if (arrived !== undefined) process.kill(process.pid, arrived);
    },
  };
}

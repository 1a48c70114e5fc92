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

/** Holds taken and not yet released in this process, and what waits for the last of them to end. */
let holdsTaken = 0;
const waiting: (() => void)[] = [];

/**
 * Runs `then` now, or, while a hold is taken, once the last one is released (if the process is still alive then).
 * For the CLI's own reasons to end (src/cli/end-on-stream-error.ts): found in review, a Ctrl-C during a refresh in
 * `delegate find-slot … 2>&1 | tee log` also ended `tee`, the notice's write then failed with EPIPE, and the
 * process's handler for a broken pipe ended it at once, with the spent refresh token still in the cache.
 */
export function afterHolds(then: () => void): void {
  if (holdsTaken === 0) then();
  else waiting.push(then);
}

export interface SignalHold {
  /** Starts holding (again a no-op while held). */
  hold(): void;
  /** Stops holding; a signal that came meanwhile is raised again now. */
  release(): void;
}

/** What a person is told when their Ctrl-C (or another ending signal) is held. */
export const HELD_NOTICE =
  'delegate: Finishing the token refresh in progress, so that your sign-in is kept; the command ends once it is saved. Press Ctrl-C again to end it now.\n';

/** The same, while a sign-in's code is redeemed (a browser's, or a device poll's) and its tokens saved. */
export const SIGN_IN_HELD_NOTICE =
  'delegate: Finishing the sign-in in progress, so that the tokens it may bring are saved; the command ends once they are. Press Ctrl-C again to end it now.\n';

/**
 * Writes the notice to stderr, and never fails the command for it. Found in review: on a terminal that had gone
 * (SIGHUP, a dropped SSH session) the write failed with EIO, the error ended the command before the new tokens were
 * saved, and the next command's refresh was a replay that signed the person out.
 */
function noticeOnStderr(text: string): void {
  try {
    // Not removed after the write: a stream reports a failed write to the write's callback first and then as an
    // 'error' event, which with no listener would end the process.
    if (!process.stderr.listeners('error').includes(ignoreError)) process.stderr.on('error', ignoreError);
    process.stderr.write(text);
  } catch {
    // Nowhere to say it: the hold goes on regardless.
  }
}

function ignoreError(): void {}

/** A second SIGINT or SIGTERM sooner than this after the first is taken for the same one delivered twice (see signalHold). */
export const ONE_DELIVERY_MS = 250;

/**
 * A hold on this process's ending signals, not yet taken. A Ctrl-C held (SIGINT: a person at the terminal) is
 * answered with one line on stderr (`notice`), so that it is not met by silence during a slow refresh; SIGTERM (a
 * program) and SIGHUP (the terminal gone) are held without a word. A second SIGINT or SIGTERM, in any mix, ends the
 * process at once by that second signal (a shell reports 130 or 143), as whoever sends a second one means: before, a
 * second SIGTERM was held like the first, and a token endpoint that hung kept `kill PID; kill PID` waiting up to the
 * request timeout (found in review, s27). The authorization server then finds the client gone and carries out no
 * rotation (grant-refresh.ts), unless it already had. A second one within ONE_DELIVERY_MS of the first is the same
 * signal delivered twice (GNU `timeout`), and is held like the first. SIGHUP never ends the hold early: it is sent alongside the
 * others without anyone asking twice (systemd sends a session's processes SIGHUP right after SIGTERM; a shell whose
 * terminal hung up passes SIGHUP on to its jobs, and the kernel may send the same group another).
 */
export function signalHold(notice: (text: string) => void = noticeOnStderr, text: string = HELD_NOTICE): SignalHold {
  let holding = false;
  /** The first signal held: raised again at the release. */
  let arrived: NodeJS.Signals | undefined;
  /** When the first SIGINT or SIGTERM came (performance.now()): the next of either, ONE_DELIVERY_MS later or more, ends the process now. */
  let askedAt: number | undefined;
  const stopHolding = () => {
    holding = false;
    holdsTaken--;
    for (const signal of HELD) process.off(signal, note);
  };
  function note(signal: NodeJS.Signals): void {
    arrived ??= signal;
    if (signal === 'SIGHUP') return;
    const now = performance.now();
    if (askedAt === undefined) {
      askedAt = now;
      if (signal === 'SIGINT') notice(text);
      return;
    }
    // One signal delivered twice, not asked twice (found in review, s27rev1): GNU `timeout` sends its signal to the
    // command and then to the command's process group, and the two may arrive apart (1 run in 15 seen); counted as a
    // second, they ended `timeout 60 delegate find-slot` mid-refresh, with the spent refresh token left in the cache.
    if (now - askedAt < ONE_DELIVERY_MS) return;
    stopHolding();
    process.kill(process.pid, signal);
  }
  return {
    hold() {
      if (holding) return;
      holding = true;
      holdsTaken++;
      for (const signal of HELD) process.on(signal, note);
    },
    release() {
      if (!holding) return;
      stopHolding();
      // With our listener gone, the signal does what it would have done (Node's default: end the process by it).
      if (arrived !== undefined) process.kill(process.pid, arrived);
      // On a turn of its own: what waited may end the process, or throw, and the caller has finished its work.
      if (holdsTaken === 0) for (const then of waiting.splice(0)) process.nextTick(then);
    },
  };
}

/** The hold a sign-in takes while it redeems its code and saves the tokens (SessionOptions.signInSignals, else a new one). */
export function signInHold(given?: SignalHold): SignalHold {
  return given ?? signalHold(noticeOnStderr, SIGN_IN_HELD_NOTICE);
}

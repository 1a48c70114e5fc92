// Work written as a generator that yields between steps of a few
// milliseconds, run either straight through (a command-line read) or
// cooperatively (in a server, where the other requests of the process run
// between the steps: setImmediate lets pending I/O go first).

/** A computation that yields between steps and returns its result. */
export type Steps<T> = Generator<void, T, void>;

/** Runs `steps` to the end without letting anything else run. */
export function runSteps<T>(steps: Steps<T>): T {
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

/** Runs `steps`, letting the event loop run between them. */
export async function runStepsCooperatively<T>(steps: Steps<T>): Promise<T> {
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** Counts units of work and says when a step is due. */
export class StepCounter {
  private since = 0;

  constructor(private readonly perStep: number) {}

  /** Counts `units`; true when a step is due (the caller yields). */
  spend(units: number): boolean {
    this.since += units;
    if (this.since < this.perStep) return false;
    this.since = 0;
    return true;
  }
}

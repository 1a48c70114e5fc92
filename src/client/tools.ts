// find_slot and list_busy as the commands call them: the quick path first
// (quick-call.ts, a cached token and no SDK), else the full session
// (session.ts, imported only then), which refreshes, steps up or signs in.
import { quickToolCall } from './quick-call.js';
import type { BusyList, BusyListInput, FindSlotInput, SessionOptions, SlotSearchResult } from './session.js';
import { busyList, FIND_SLOT_TOOL, LIST_BUSY_TOOL, slotSearchResult } from './tool-results.js';

export async function findSlot(options: SessionOptions, input: FindSlotInput): Promise<SlotSearchResult> {
  const quick = await quickToolCall(options, FIND_SLOT_TOOL, { ...input });
  if (quick !== undefined) return slotSearchResult(quick);
  const session = await import('./session.js');
  return session.findSlot(options, input);
}

export async function listBusy(options: SessionOptions, input: BusyListInput): Promise<BusyList> {
  const quick = await quickToolCall(options, LIST_BUSY_TOOL, { ...input });
  if (quick !== undefined) return busyList(quick);
  const session = await import('./session.js');
  return session.listBusy(options, input);
}

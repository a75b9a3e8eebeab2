// Work distribution inside one parallel job. Every thread calls a job's entry with its own index; they
// pull task numbers from a counter in the job descriptor, so a thread slowed by the OS does less work
// instead of holding the others up. The non-shared build runs on one thread and needs no atomics.

@inline export function nextTask(counter: usize): i32 {
  if (ASC_FEATURE_THREADS) return atomic.add<i32>(counter, 1);
  const t = load<i32>(counter);
  store<i32>(counter, t + 1);
  return t;
}

// The latest known state of each task, merged from the three places a task's status
// arrives: the `tasks` frame after `connected` (unfinished tasks), `topic` frames of
// `task:<id>` (live, when subscribed; the first one is the state at subscribe time),
// and the owner's guaranteed `message`s with topic `task:<id>`.

const FINAL = new Set(["completed", "failed", "cancelled"]);
const FIELDS = ["status", "progress", "message", "result", "error"];

/** @param {string} topic */
export function taskIdOf(topic) {
  return typeof topic === "string" && topic.startsWith("task:") ? topic.slice(5) : null;
}

/** @typedef {import("./index.js").TaskState} TaskState */

export class TaskTracker {
  /** @type {Map<string, TaskState>} */
  tasks = new Map();
  limit = 1000;

  /**
   * Merge a task status; answer the new state, or null when it changes nothing (the
   * same report seen twice: as a topic frame and as a message) or would move a task
   * that ended back to a running state (an old redelivery).
   *
   * @param {any} data a task status object with `task_id` and `status`
   * @returns {TaskState | null}
   */
  update(data) {
    if (!data || typeof data !== "object" || typeof data.task_id !== "string") return null;
    const before = this.tasks.get(data.task_id);
    if (before && FINAL.has(before.status) && !FINAL.has(data.status)) return null;
    const merged = { ...before, ...data };
    delete merged.type;
    if (before && FIELDS.every((f) => JSON.stringify(before[f]) === JSON.stringify(merged[f]))) {
      this.tasks.set(data.task_id, merged);
      return null;
    }
    this.tasks.delete(data.task_id);
    this.tasks.set(data.task_id, merged);
    if (this.tasks.size > this.limit) {
      const oldest = this.tasks.keys().next().value;
      if (oldest !== undefined) this.tasks.delete(oldest);
    }
    return merged;
  }

  /** @param {string} taskId */
  get(taskId) {
    return this.tasks.get(taskId);
  }
}

/** @param {TaskState | undefined} state */
export function isFinal(state) {
  return !!state && FINAL.has(state.status);
}

// The promises of ready(): resolved when connected, rejected when the client stops or
// after their timeout.

import { TimeoutError } from "./errors.js";

export class Waiters {
  /** @type {{resolve: () => void, reject: (e: Error) => void, timer: any}[]} */
  #list = [];

  /**
   * @param {number} [timeout] ms
   * @returns {Promise<void>}
   */
  wait(timeout) {
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject, timer: /** @type {any} */ (null) };
      if (timeout !== undefined) {
        waiter.timer = setTimeout(() => {
          this.#list = this.#list.filter((w) => w !== waiter);
          reject(new TimeoutError(`not connected within ${timeout} ms`));
        }, timeout);
      }
      this.#list.push(waiter);
    });
  }

  resolve() {
    for (const w of this.#list.splice(0)) {
      clearTimeout(w.timer);
      w.resolve();
    }
  }

  /** @param {Error} error */
  reject(error) {
    for (const w of this.#list.splice(0)) {
      clearTimeout(w.timer);
      w.reject(error);
    }
  }
}

// A small typed event emitter (on/once/off/emit), as in Node's EventEmitter and
// centrifuge-js, without a dependency.

/** @typedef {(...args: any[]) => unknown} Listener */

export class Emitter {
  /** @type {Map<string, Listener[]>} */
  #listeners = new Map();

  /**
   * @param {string} event
   * @param {Listener} listener
   * @returns {this}
   */
  on(event, listener) {
    const list = this.#listeners.get(event);
    if (list) list.push(listener);
    else this.#listeners.set(event, [listener]);
    return this;
  }

  /**
   * @param {string} event
   * @param {Listener} listener
   * @returns {this}
   */
  once(event, listener) {
    /** @param {any[]} args */
    const wrapper = (...args) => {
      this.off(event, wrapper);
      return listener(...args);
    };
    wrapper.listener = listener;
    return this.on(event, wrapper);
  }

  /**
   * Remove one listener, or every listener of `event`, or every listener.
   * @param {string} [event]
   * @param {Listener} [listener]
   * @returns {this}
   */
  off(event, listener) {
    if (event === undefined) {
      this.#listeners.clear();
    } else if (listener === undefined) {
      this.#listeners.delete(event);
    } else {
      const list = (this.#listeners.get(event) || []).filter(
        (l) => l !== listener && /** @type {any} */ (l).listener !== listener,
      );
      if (list.length) this.#listeners.set(event, list);
      else this.#listeners.delete(event);
    }
    return this;
  }

  /**
   * @param {string} event
   * @returns {number}
   */
  listenerCount(event) {
    return (this.#listeners.get(event) || []).length;
  }

  /**
   * Call the listeners of `event` in order. A listener that throws does not stop the
   * others; its error (or rejected promise) is in the returned results.
   *
   * @param {string} event
   * @param {any[]} args
   * @returns {Promise<unknown>[]} one settled-or-pending promise per listener
   */
  emitCollect(event, ...args) {
    const list = this.#listeners.get(event);
    if (!list) return [];
    return list.slice().map((listener) => {
      try {
        return Promise.resolve(listener(...args));
      } catch (error) {
        return Promise.reject(error);
      }
    });
  }
}

// Dedupe by message id: a bounded in-memory set, and optional stores that keep the
// ids across a page reload (sessionStorage, IndexedDB).
//
// Courier delivers at least once: a message comes again (same id, attempt + 1) when
// its ack did not reach the server. The client acks such a duplicate again but shows
// it once. An id is remembered once the app has handled the message (auto acks) or
// acked it (manual acks), and it is written to the store before its ack is sent: a
// reload between the two finds the id and does not show the message again.

/** The oldest ids are forgotten past `limit`; a Set keeps insertion order. */
export class SeenIds {
  /** @param {number} [limit] */
  constructor(limit = 10000) {
    this.limit = Math.max(1, limit);
    /** @type {Set<string>} */
    this.ids = new Set();
  }

  /** @param {string} id */
  has(id) {
    return this.ids.has(id);
  }

  /** @param {string} id */
  add(id) {
    this.ids.delete(id); // re-adding refreshes its place
    this.ids.add(id);
    while (this.ids.size > this.limit) {
      const oldest = this.ids.values().next().value;
      if (oldest === undefined) break;
      this.ids.delete(oldest);
    }
  }

  get size() {
    return this.ids.size;
  }
}

/**
 * @typedef {object} SeenStore
 * @property {() => Iterable<string> | Promise<Iterable<string>>} load ids seen before
 * @property {(ids: string[]) => void | Promise<void>} add remember these ids
 */

/**
 * Ids kept in `sessionStorage` (one tab's session: survives reloads, not a new tab).
 *
 * @param {{key?: string, limit?: number, storage?: Storage}} [options]
 * @returns {SeenStore}
 */
export function sessionStore({ key = "courier:seen", limit = 2000, storage } = {}) {
  const store = storage || globalThis.sessionStorage;
  if (!store) throw new TypeError("sessionStore: no sessionStorage here; pass { storage }");
  const read = () => {
    try {
      const ids = JSON.parse(store.getItem(key) || "[]");
      return Array.isArray(ids) ? ids.filter((id) => typeof id === "string") : [];
    } catch {
      return [];
    }
  };
  return {
    load: read,
    add(ids) {
      const all = read().filter((id) => !ids.includes(id));
      all.push(...ids);
      store.setItem(key, JSON.stringify(all.slice(-limit)));
    },
  };
}

/**
 * Ids kept in IndexedDB (every tab of the origin, across restarts of the browser). The
 * newest `limit` ids are kept.
 *
 * @param {{name?: string, limit?: number, indexedDB?: IDBFactory}} [options]
 * @returns {SeenStore}
 */
export function indexedDBStore({ name = "courier-seen", limit = 5000, indexedDB } = {}) {
  const idb = indexedDB || globalThis.indexedDB;
  if (!idb) throw new TypeError("indexedDBStore: no indexedDB here; pass { indexedDB }");
  /** @type {Promise<IDBDatabase> | null} */
  let opened = null;
  const open = () => {
    opened ||= new Promise((resolve, reject) => {
      const req = idb.open(name, 1);
      req.onupgradeneeded = () => {
        const os = req.result.createObjectStore("seen", { keyPath: "id" });
        os.createIndex("at", "at");
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    return opened;
  };
  /**
   * @param {IDBTransaction} tx
   * @returns {Promise<void>}
   */
  const done = (tx) =>
    new Promise((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = tx.onabort = () => reject(tx.error);
    });
  let seq = 0;
  return {
    async load() {
      const db = await open();
      const tx = db.transaction("seen", "readonly");
      const req = tx.objectStore("seen").index("at").getAll();
      await done(tx);
      /** @type {{id: string, at: number}[]} */
      const rows = req.result;
      seq = rows.length ? rows[rows.length - 1].at : 0;
      return rows.slice(-limit).map((row) => row.id);
    },
    async add(ids) {
      const db = await open();
      const tx = db.transaction("seen", "readwrite");
      const os = tx.objectStore("seen");
      const base = Math.max(seq, Date.now() * 1000);
      ids.forEach((id, i) => os.put({ id, at: base + i }));
      seq = base + ids.length;
      const count = os.count();
      count.onsuccess = () => {
        const extra = count.result - limit;
        if (extra <= 0) return;
        const cursor = os.index("at").openCursor();
        let left = extra;
        cursor.onsuccess = () => {
          const c = cursor.result;
          if (!c || left-- <= 0) return;
          c.delete();
          c.continue();
        };
      };
      await done(tx);
    },
  };
}

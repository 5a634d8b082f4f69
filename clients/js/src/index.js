// @courier/client: the browser and Node end of Courier's delivery guarantee.
// Types: index.d.ts. Guide and API reference: docs/clients.md.

export { Courier } from "./client.js";
export { websocketUrl } from "./options.js";
export { Backoff, backoffDelay } from "./backoff.js";
export { SeenIds, indexedDBStore, sessionStore } from "./dedupe.js";
export {
  CloseCodes,
  CourierError,
  DisconnectedError,
  RefusedError,
  TimeoutError,
  UnauthorizedError,
} from "./errors.js";
export { tokenExp } from "./token.js";

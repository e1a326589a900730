/**
 * Request/response: `node.server(service, handler)` and `node.client(service).request(value)`.
 * @module
 */
export { Client, type ClientOptions, type InPlaceResponse } from "./client.js";
export { Server, type Handler, type InPlaceHandler, type ServerOptions } from "./server.js";

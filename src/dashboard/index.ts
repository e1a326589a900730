/**
 * The web dashboard (`plexus/dashboard`): serve it next to a GraphServer of your own process.
 *
 * ```ts
 * import { GraphServer } from "plexus";
 * import { Dashboard } from "plexus/dashboard";
 * await using graph = await GraphServer.start();
 * await using dash = await Dashboard.start({ source: graph, graphAddress: "127.0.0.1:25978" });
 * console.log(dash.url);
 * ```
 * @module
 */
export { Dashboard, type DashboardOptions, type DashboardSource } from "./server.js";

/**
 * Publish/subscribe over a topic graph.
 * @module
 */
export { Publisher, type PublisherOptions } from "./publisher.js";
export { Subscriber, type ForEachOptions, type SubscriberOptions } from "./subscriber.js";
export type { Sample } from "./sample.js";

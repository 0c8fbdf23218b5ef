// A consuming team's TypeScript, type-checked with `tsc --strict` against the types that
// openapi-typescript generates from the merged contract (`gateway spec`): a few calls through
// openapi-fetch, and a webhook handler that narrows on the event `type`. Never run: if the
// contract stops generating types that natural code like this compiles against, CI fails.
import createClient from "openapi-fetch";

import type { components, paths, webhooks } from "./gateway.js";

type Schemas = components["schemas"];

export function gateway(baseUrl: string, callerKey: string) {
  return createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${callerKey}` } });
}

export async function backendNames(baseUrl: string, callerKey: string): Promise<string[]> {
  const { data, error } = await gateway(baseUrl, callerKey).GET("/v1/backends");
  if (error) throw new Error(`${error.status}: ${error.title}`);
  return data.items.filter((backend) => backend.configured).map((backend) => backend.name);
}

export async function createShirt(baseUrl: string, callerKey: string): Promise<Schemas["Product"]> {
  const api = gateway(baseUrl, callerKey);
  const productId = crypto.randomUUID(); // version 4, as the contract's pattern requires
  const { data, error } = await api.PUT("/v1/products/{productId}", {
    params: { path: { productId } },
    body: { name: "Silk shirt", type: "GARMENT_2D", sku: "shirt-1" },
  });
  if (error) throw new Error(`${error.status}: ${error.detail ?? error.title}`);
  const configuration = await api.PUT("/v1/products/{productId}/configurations/{configurationId}", {
    params: { path: { productId, configurationId: crypto.randomUUID() } },
    body: { name: "Blue, M" },
  });
  if (configuration.error) throw new Error(configuration.error.title);
  const state: Schemas["ConfigurationState"] = configuration.data.state;
  console.log(`configuration ${configuration.data.id} is ${state}`);
  return data;
}

export async function subscribe(baseUrl: string, callerKey: string): Promise<string> {
  const { data, error } = await gateway(baseUrl, callerKey).POST("/v1/subscriptions", {
    body: { url: "https://orders.internal.example/hooks", eventTypes: ["product.completed"] },
  });
  if (error) throw new Error(error.title);
  return data.secret; // whsec_…, shown once: keep it to verify deliveries
}

export async function lastEvents(baseUrl: string, callerKey: string): Promise<Schemas["Event"][]> {
  const { data, error } = await gateway(baseUrl, callerKey).GET("/v1/events", {
    params: { query: { limit: 10, type: "product.completed" } },
  });
  if (error) throw new Error(error.title);
  return data.items;
}

// Webhooks: the body of each event type the contract names, and one handler for all of them.
type Delivered<K extends keyof webhooks> =
  webhooks[K]["post"]["requestBody"]["content"]["application/json"];
/** Every event of a type the gateway defines (`backend.raw` stands for the backends' others). */
export type GatewayEvent = Delivered<Exclude<keyof webhooks, "backend.raw">>;
export type BackendRawEvent = Delivered<"backend.raw">;

export function onEvent(event: GatewayEvent): string {
  switch (event.type) {
    case "product.completed":
      return `product ${event.data.productId}: ${event.data.configurations.length} configurations`;
    case "product.rejected":
      return `product ${event.data.productId} rejected`;
    case "photo.uploaded":
      return `photo ${event.data.photo.id} for ${event.data.userId}`;
    case "photo.deleted":
      return `photo ${event.data.photoId} of ${event.data.userId} deleted`;
    case "user.merged":
      return `${event.data.guestUserId} merged into ${event.data.userId}`;
    case "subscription.disabled":
      return `subscription ${event.data.subscriptionId} disabled: ${event.data.reason}`;
    case "gateway.test":
      return event.data.message;
    default: {
      const unhandled: never = event; // a new event type in the contract fails to compile here
      return unhandled;
    }
  }
}

export function onRawEvent(event: BackendRawEvent): string {
  return `${event.backend ?? "gateway"} sent ${event.type} with ${Object.keys(event.data).length} fields`;
}

// Types of the airlock JavaScript SDK (`airlock-sdk`): write airlock tools
// in JavaScript or TypeScript. See index.js for how a tool is built.

/** A JSON value, as tools receive and return them. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A JSON Schema object describing a tool's input. */
export type JsonSchema = { [keyword: string]: unknown };

/** What `defineTool` takes. */
export interface ToolDefinition<Input = any, Output = Json> {
  /** Short, stable name, e.g. "word-count". */
  name: string;
  /** One sentence an agent reads to decide whether to call the tool. */
  description: string;
  /**
   * JSON Schema of the input. `run` receives only input that passes its
   * `type`, `enum`, `properties`, `required`, `additionalProperties: false`,
   * `items`, `minLength`, `minimum` and `maximum` checks.
   */
  inputSchema: JsonSchema;
  /** Does the work; may be async (e.g. to await `fetch`). Throw `ToolError` to fail. */
  run(input: Input): Output | Promise<Output>;
}

/** The world's exports: `export const { run, describe } = defineTool(...)`. */
export interface ToolExports {
  /** The `run` export: JSON text in, JSON text out. */
  run(input: string): Promise<string>;
  /** The `describe` export. */
  describe(): { name: string; description: string; inputSchema: string };
}

/** Defines the component's tool. */
export function defineTool<Input = any, Output = Json>(
  definition: ToolDefinition<Input, Output>,
): ToolExports;

/** Thrown by a tool to fail the run with this message. */
export class ToolError extends Error {
  constructor(message: string);
}

/**
 * Checks `value` against the subset of JSON Schema `defineTool` enforces;
 * returns null or a message naming where it fails.
 */
export function check(schema: JsonSchema | boolean | undefined, value: unknown, where?: string): string | null;

/** Records a `note` event in the run's evidence log. */
export function note(key: string, value: string): void;

/** A signed, short-lived token for calling `audience`, scoped to this run. */
export function token(audience: string): string;

/** Asks a human to approve `action`; blocks until decided. True when approved. */
export function requestApproval(action: string, detail: string): boolean;

/** The approval helpers as a namespace: `approval.request(action, detail)`. */
export const approval: { request(action: string, detail: string): boolean };

/**
 * `fetch` through `wasi:http` under the profile's egress rules; a refusal
 * or transport failure throws a `ToolError` naming the method and URL.
 */
export function httpFetch(url: string, init?: RequestInit): Promise<Response>;

/** The bytes of the file at guest path `path` (a mount of the profile), at most `limit` bytes (default 16 MiB). */
export function readFile(path: string, options?: { limit?: number }): Uint8Array;

/** The UTF-8 text of the file at guest path `path`. */
export function readTextFile(path: string, options?: { limit?: number }): string;

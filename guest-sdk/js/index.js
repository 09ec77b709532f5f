// Write airlock tools in JavaScript (or TypeScript): a tool is
// `defineTool({ name, description, inputSchema, run })`, exported as the
// `run` and `describe` of world `airlock:host/http-tool` (host-api/wit):
//
//   import { defineTool, note } from 'airlock-sdk';
//
//   export const { run, describe } = defineTool({
//     name: 'hello',
//     description: 'Greets someone by name.',
//     inputSchema: { type: 'object', properties: { name: { type: 'string' } },
//                    required: ['name'], additionalProperties: false },
//     run({ name }) {
//       note('greeted', name);
//       return { greeting: `Hello, ${name}!` };
//     },
//   });
//
// `airlock build` bundles the tool (esbuild) and compiles it with
// `@bytecodealliance/componentize-js`. `run` may be async: the exported
// function runs the event loop until the promise settles. The global
// `fetch` goes through `wasi:http`, where the runner decides every request
// against the profile's `[net] allow` list and injects upstream
// credentials; `httpFetch` is `fetch` with errors that name the request.
// `readFile` / `readTextFile` read the profile's mounts (fs.js).
//
// What it defends against: a host refusal (note, token, approval, fetch)
// surfacing as an opaque exception (each helper throws a `ToolError` that
// says what was refused), and see core.js for the input checks.

import { note as hostNote } from 'airlock:host/evidence@0.1.0';
import { token as hostToken } from 'airlock:host/credentials@0.1.0';
import { request as hostRequest } from 'airlock:host/approval@0.1.0';
import { ToolError, createTool, check } from './core.js';

export { ToolError, check };
export { readFile, readTextFile } from './fs.js';

/** The error value of a failed host call (componentize-js throws the `err` payload). */
function hostError(e) {
  if (e && typeof e === 'object' && 'payload' in e) return String(e.payload);
  if (e instanceof Error) return e.message;
  return String(e);
}

/**
 * Defines the component's tool. Returns `{ run, describe }`: export both
 * from the entry module (`export const { run, describe } = defineTool(...)`).
 */
export function defineTool(definition) {
  const tool = createTool(definition);
  return {
    run: (input) => tool.run(input),
    describe: () => tool.describe(),
  };
}

/** Records a `note` event with `key` and `value` in the run's evidence log. */
export function note(key, value) {
  try {
    hostNote(String(key), String(value));
  } catch (e) {
    throw new ToolError(`note "${key}" was not recorded: ${hostError(e)}`);
  }
}

/** A signed, short-lived token for calling `audience`, scoped to this run. */
export function token(audience) {
  try {
    return hostToken(String(audience));
  } catch (e) {
    throw new ToolError(`no token for "${audience}": ${hostError(e)}`);
  }
}

/**
 * Asks a human to approve `action` (with `detail` shown to them); blocks
 * until they decide or the request expires. Returns true when approved.
 */
export function requestApproval(action, detail) {
  try {
    return hostRequest(String(action), String(detail)) === 'approved';
  } catch (e) {
    throw new ToolError(`approval for "${action}" could not be requested: ${hostError(e)}`);
  }
}

/** The SDK's helpers for `airlock:host/approval`, as a namespace. */
export const approval = { request: requestApproval };

/**
 * `fetch` through `wasi:http`, with a refusal or transport failure thrown as
 * a `ToolError` naming the method and URL. A request the profile does not
 * allow never leaves the machine; the run's evidence names the rule that
 * refused it (`airlock runs show RUN`).
 */
export async function httpFetch(url, init = {}) {
  const method = (init.method ?? 'GET').toUpperCase();
  try {
    return await fetch(url, init);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new ToolError(
      `${method} ${url} was refused or failed: ${why} (a request outside the profile's [net] allow list is refused by the host; airlock runs show RUN names the rule)`,
    );
  }
}

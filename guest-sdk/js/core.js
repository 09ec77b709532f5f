// The host-independent part of the airlock JavaScript SDK: turning a tool
// definition into the `run` and `describe` exports of the
// `airlock:host/http-tool` world, and checking the input against the tool's
// schema. No `airlock:host` imports here, so it is tested under Node
// (`node --test test/`).
//
// What it defends against: a tool's `run` receiving input the tool did not
// declare (the input is checked against `inputSchema` first: wrong JSON
// types, missing required fields and, with `additionalProperties: false`,
// unknown fields are refused with a message naming the field), and a
// failure inside the tool escaping as a trap with no message (every thrown
// value becomes the run's error text).

/** Thrown by a tool to fail the run with this message. */
export class ToolError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ToolError';
  }
}

function jsonType(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  if (typeof value === 'boolean') return 'boolean';
  if (typeof value === 'string') return 'string';
  return 'object';
}

function typeMatches(expected, actual) {
  if (expected === actual) return true;
  return expected === 'number' && actual === 'integer';
}

/**
 * Checks `value` against the part of JSON Schema a tool's input schema
 * commonly uses: `type` (one or a list), `enum`, `properties`, `required`,
 * `additionalProperties: false`, `items`, `minLength`, `minimum`,
 * `maximum`. Other keywords are not checked (the schema is still what
 * `describe` reports). Returns null, or a message naming where it fails.
 */
export function check(schema, value, where = 'input') {
  if (schema === true || schema === undefined || schema === null) return null;
  if (schema === false) return `${where}: no value is allowed here`;
  const actual = jsonType(value);
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (!types.some((t) => typeMatches(t, actual))) {
      return `${where}: expected ${types.join(' or ')}, got ${actual}`;
    }
  }
  if (Array.isArray(schema.enum) && !schema.enum.some((v) => JSON.stringify(v) === JSON.stringify(value))) {
    return `${where}: expected one of ${JSON.stringify(schema.enum)}`;
  }
  if (actual === 'string' && typeof schema.minLength === 'number' && [...value].length < schema.minLength) {
    return `${where}: shorter than ${schema.minLength} characters`;
  }
  if ((actual === 'integer' || actual === 'number')) {
    if (typeof schema.minimum === 'number' && value < schema.minimum) {
      return `${where}: less than ${schema.minimum}`;
    }
    if (typeof schema.maximum === 'number' && value > schema.maximum) {
      return `${where}: more than ${schema.maximum}`;
    }
  }
  if (actual === 'object') {
    const properties = schema.properties ?? {};
    for (const name of schema.required ?? []) {
      if (!Object.prototype.hasOwnProperty.call(value, name)) return `${where}: missing field "${name}"`;
    }
    for (const [name, field] of Object.entries(value)) {
      const fieldWhere = where === 'input' ? `field "${name}"` : `${where}.${name}`;
      if (Object.prototype.hasOwnProperty.call(properties, name)) {
        const problem = check(properties[name], field, fieldWhere);
        if (problem) return problem;
      } else if (schema.additionalProperties === false) {
        return `${where}: unknown field "${name}"`;
      } else if (typeof schema.additionalProperties === 'object') {
        const problem = check(schema.additionalProperties, field, fieldWhere);
        if (problem) return problem;
      }
    }
  }
  if (actual === 'array' && schema.items !== undefined && !Array.isArray(schema.items)) {
    for (let i = 0; i < value.length; i++) {
      const problem = check(schema.items, value[i], `${where}[${i}]`);
      if (problem) return problem;
    }
  }
  return null;
}

/** The message of anything thrown, for the run's error. */
function messageOf(name, thrown) {
  if (thrown instanceof ToolError) return thrown.message;
  if (thrown instanceof Error) return `${name} failed: ${thrown.name}: ${thrown.message}`;
  if (typeof thrown === 'string') return thrown;
  return `${name} failed: ${String(thrown)}`;
}

/**
 * Builds the world's exports from a tool definition. `run` here is async
 * (a tool's `run` may await `fetch`); `resolve` turns its promise into the
 * synchronous value the component export returns.
 */
export function createTool(definition) {
  const { name, description, inputSchema, run } = definition ?? {};
  if (typeof name !== 'string' || name.length === 0) {
    throw new TypeError('defineTool: `name` must be a non-empty string');
  }
  if (typeof description !== 'string' || description.length === 0) {
    throw new TypeError(`defineTool ${name}: \`description\` must be a non-empty string (agents read it)`);
  }
  if (typeof inputSchema !== 'object' || inputSchema === null) {
    throw new TypeError(`defineTool ${name}: \`inputSchema\` must be a JSON Schema object`);
  }
  if (typeof run !== 'function') {
    throw new TypeError(`defineTool ${name}: \`run\` must be a function`);
  }
  const schemaText = JSON.stringify(inputSchema);
  return {
    name,
    /** `run` export logic: resolves to the output JSON text, rejects with the error text. */
    async run(text) {
      let input;
      try {
        input = JSON.parse(text);
      } catch (e) {
        throw `input is not valid JSON for ${name}: ${e.message}`;
      }
      const problem = check(inputSchema, input);
      if (problem) throw `input is not valid JSON for ${name}: ${problem}`;
      let output;
      try {
        output = await run(input);
      } catch (e) {
        throw messageOf(name, e);
      }
      let json;
      try {
        json = JSON.stringify(output === undefined ? null : output);
      } catch (e) {
        throw `output of ${name} could not be serialized as JSON: ${e.message}`;
      }
      return json;
    },
    describe() {
      return { name, description, inputSchema: schemaText };
    },
  };
}

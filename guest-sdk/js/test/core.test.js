// The SDK's host-independent part under Node: input checks and the run
// logic (JSON in, the tool's run, JSON out, errors as text).
//
//   node --test guest-sdk/js/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ToolError, check, createTool } from '../core.js';

const schema = {
  type: 'object',
  properties: {
    name: { type: 'string', minLength: 1 },
    count: { type: 'integer', minimum: 1 },
    ratio: { type: 'number' },
    tags: { type: 'array', items: { type: 'string' } },
    mode: { enum: ['fast', 'slow'] },
  },
  required: ['name'],
  additionalProperties: false,
};

test('good input passes', () => {
  assert.equal(check(schema, { name: 'a', count: 2, ratio: 1, tags: ['x'], mode: 'fast' }), null);
});

test('bad input names the field', () => {
  for (const [value, needle] of [
    [[], 'expected object, got array'],
    [{}, 'missing field "name"'],
    [{ name: 'a', extra: 1 }, 'unknown field "extra"'],
    [{ name: 1 }, 'field "name": expected string, got integer'],
    [{ name: '' }, 'shorter than 1'],
    [{ name: 'a', count: 1.5 }, 'field "count": expected integer, got number'],
    [{ name: 'a', count: 0 }, 'less than 1'],
    [{ name: 'a', tags: ['x', 2] }, 'field "tags"[1]'],
    [{ name: 'a', mode: 'medium' }, 'expected one of'],
    [{ name: 'a', count: true }, 'expected integer, got boolean'],
  ]) {
    const problem = check(schema, value);
    assert.ok(problem && problem.includes(needle), `${JSON.stringify(value)}: ${problem}`);
  }
});

test('run round-trips JSON and awaits async tools', async () => {
  const tool = createTool({
    name: 'double',
    description: 'Doubles a number.',
    inputSchema: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] },
    async run({ n }) {
      await Promise.resolve();
      return { n: n * 2 };
    },
  });
  assert.equal(await tool.run('{"n": 21}'), '{"n":42}');
  assert.deepEqual(tool.describe(), {
    name: 'double',
    description: 'Doubles a number.',
    inputSchema: '{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]}',
  });
});

test('errors become the run error text', async () => {
  const tool = createTool({
    name: 'boom',
    description: 'Fails.',
    inputSchema: { type: 'object' },
    run({ how }) {
      if (how === 'tool') throw new ToolError('n must not be 0');
      if (how === 'string') throw 'plain';
      if (how === 'cycle') { const a = {}; a.a = a; return a; }
      return undefined.x;
    },
  });
  await assert.rejects(tool.run('not json'), (e) => e.startsWith('input is not valid JSON for boom: '));
  await assert.rejects(tool.run('[]'), (e) => e === 'input is not valid JSON for boom: input: expected object, got array');
  await assert.rejects(tool.run('{"how":"tool"}'), (e) => e === 'n must not be 0');
  await assert.rejects(tool.run('{"how":"string"}'), (e) => e === 'plain');
  await assert.rejects(tool.run('{"how":"cycle"}'), (e) => e.startsWith('output of boom could not be serialized as JSON'));
  await assert.rejects(tool.run('{}'), (e) => e.startsWith('boom failed: TypeError: '));
});

test('definitions are checked', () => {
  assert.throws(() => createTool({}), /name/);
  assert.throws(() => createTool({ name: 'x', inputSchema: {}, run() {} }), /description/);
  assert.throws(() => createTool({ name: 'x', description: 'd', run() {} }), /inputSchema/);
  assert.throws(() => createTool({ name: 'x', description: 'd', inputSchema: {} }), /run/);
});

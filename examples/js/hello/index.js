// `hello`: the smallest airlock tool, in JavaScript. Input {"name": "Ada"},
// output {"greeting": "Hello, Ada!"}; records a `greeted` note in the run's
// evidence log. The same tool as examples/hello (Rust) and
// examples/python/hello, under the same profile.
import { defineTool, note } from 'airlock-sdk';

export const { run, describe } = defineTool({
  name: 'hello',
  description: 'Greets someone by name.',
  inputSchema: {
    type: 'object',
    properties: { name: { type: 'string' } },
    required: ['name'],
    additionalProperties: false,
  },
  run({ name }) {
    note('greeted', name);
    return { greeting: `Hello, ${name}!` };
  },
});
